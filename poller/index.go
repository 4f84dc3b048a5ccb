package poller

import "hash/maphash"

// The target index maps (account, kind, resource) to an entry slot. It is an
// open-addressing hash table of slot numbers with linear probing and
// backward-shift deletion: 4 bytes a cell, at most 3/4 full, so 5-11 bytes a
// target, where a Go map keyed by the target would take 40-80. Keys are not
// stored: a cell is compared through the entry it points to.

func (s *Schedule) hashKey(account, kind uint32, resource string) uint64 {
	h := maphash.String(s.seed, resource)
	h ^= (uint64(account)<<32 | uint64(kind)) * 0x9e3779b97f4a7c15
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return h
}

func (s *Schedule) hashEntry(e *entry) uint64 {
	return s.hashKey(e.account, e.kind, e.resource)
}

// idxFind returns the cell holding the target, or -1.
func (s *Schedule) idxFind(account, kind uint32, resource string) int {
	if len(s.idx) == 0 {
		return -1
	}
	mask := len(s.idx) - 1
	for i := int(s.hashKey(account, kind, resource)) & mask; ; i = (i + 1) & mask {
		c := s.idx[i]
		if c == 0 {
			return -1
		}
		if e := s.ent(c - 1); e.account == account && e.kind == kind && e.resource == resource {
			return i
		}
	}
}

// idxInsert adds slot sl, whose entry is filled in and not yet indexed.
func (s *Schedule) idxInsert(sl uint32) {
	if (s.idxN+1)*4 > len(s.idx)*3 {
		s.idxGrow()
	}
	s.idxPlace(sl)
	s.idxN++
}

func (s *Schedule) idxPlace(sl uint32) {
	mask := len(s.idx) - 1
	i := int(s.hashEntry(s.ent(sl))) & mask
	for s.idx[i] != 0 {
		i = (i + 1) & mask
	}
	s.idx[i] = sl + 1
}

func (s *Schedule) idxGrow() {
	old := s.idx
	s.idx = make([]uint32, max(64, 2*len(old)))
	for _, c := range old {
		if c != 0 {
			s.idxPlace(c - 1)
		}
	}
}

// idxDelete empties cell i, shifting back the cells of its probe run that
// would otherwise become unreachable.
func (s *Schedule) idxDelete(i int) {
	mask := len(s.idx) - 1
	for j := (i + 1) & mask; s.idx[j] != 0; j = (j + 1) & mask {
		home := int(s.hashEntry(s.ent(s.idx[j]-1))) & mask
		// move j into the hole at i unless its home lies cyclically in (i, j]
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			s.idx[i] = s.idx[j]
			i = j
		}
	}
	s.idx[i] = 0
	s.idxN--
}
