package jsonscan

import "testing"

// benchText is a canonical observation of the size the persist fast paths
// see: strings, numbers, literals, nested objects and arrays.
const benchText = `{"cpus":2,"created_at":"2026-11-25T10:00:00Z","disks":[{"boot":true,"id":"vol-1","size_gb":40,"type":"ssd"},` +
	`{"boot":false,"id":"vol-2","size_gb":200,"type":"hdd"}],"flavor":"m1.small","host":null,"id":"i-0abc00000001",` +
	`"image":"debian-13","ips":["10.0.0.17","192.168.1.5"],"locked":false,"memory_mb":4096,"name":"web-01.prod",` +
	`"security_groups":["sg-web","sg-ssh"],"state":"running","tags":{"cost_center":"cc-1042","env":"prod",` +
	`"owner":"Jürgen Müller","team":"platform"},"zone":"eu-west-1a"}`

func BenchmarkSkipValue(b *testing.B) {
	b.Run("bytes", func(b *testing.B) {
		in := []byte(benchText)
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			s := New(in)
			if _, ok := s.SkipValue(MaxDepth); !ok {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("string", func(b *testing.B) {
		b.SetBytes(int64(len(benchText)))
		for b.Loop() {
			s := NewString(benchText)
			if _, ok := s.SkipValue(MaxDepth); !ok {
				b.Fatal("invalid")
			}
		}
	})
}
