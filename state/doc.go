// Package state holds the types that describe observed cloud state: what a
// poller saw ([Observation], [Snapshot]), what it was looking at ([Target]) and
// what changed as a result ([Change]).
//
// The types live in their own small package so that the root package (which
// defines the Poller and StateSink interfaces) and the packages that implement
// those interfaces (persist, cloud providers) can share them without importing
// each other, in the way River shares rivertype between its client and drivers.
package state
