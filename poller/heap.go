package poller

// The due heap is a 4-ary min-heap of (key, slot) pairs stored by value, so a
// comparison never leaves the heap's own memory and the four children of a
// node share one or two cache lines. Each entry records its position
// (entry.heapIdx) so a target can be moved or removed in O(log n).

type hitem struct {
	key  int64  // unix ns: when the target is due, or when its lease expires
	slot uint32 // entry slot
}

func (s *Schedule) hpush(slot uint32, key int64) {
	s.heap = append(s.heap, hitem{key: key, slot: slot})
	s.up(len(s.heap) - 1)
}

// hremove removes the item at i.
func (s *Schedule) hremove(i int) {
	h := s.heap
	s.ent(h[i].slot).heapIdx = -1
	last := len(h) - 1
	if i != last {
		h[i] = h[last]
		s.heap = h[:last]
		s.hfix(i)
		return
	}
	s.heap = h[:last]
}

// hset changes the key of the item at i.
func (s *Schedule) hset(i int, key int64) {
	old := s.heap[i].key
	s.heap[i].key = key
	if key < old {
		s.up(i)
	} else if key > old {
		s.down(i)
	}
}

func (s *Schedule) hfix(i int) {
	if i > 0 && s.heap[i].key < s.heap[(i-1)>>2].key {
		s.up(i)
	} else {
		s.down(i)
	}
}

func (s *Schedule) up(i int) {
	h := s.heap
	it := h[i]
	for i > 0 {
		p := (i - 1) >> 2
		if h[p].key <= it.key {
			break
		}
		h[i] = h[p]
		s.ent(h[i].slot).heapIdx = int32(i)
		i = p
	}
	h[i] = it
	s.ent(it.slot).heapIdx = int32(i)
}

func (s *Schedule) down(i int) {
	h := s.heap
	n := len(h)
	it := h[i]
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m, mk := c, h[c].key
		end := min(c+4, n)
		for j := c + 1; j < end; j++ {
			if k := h[j].key; k < mk {
				m, mk = j, k
			}
		}
		if mk >= it.key {
			break
		}
		h[i] = h[m]
		s.ent(h[i].slot).heapIdx = int32(i)
		i = m
	}
	h[i] = it
	s.ent(it.slot).heapIdx = int32(i)
}

// The ready heap orders accounts that have targets waiting for budget by the
// time their next token arrives (account.readyAt). It is small: one item per
// starved account.

func (s *Schedule) readySet(a *account, at int64) {
	a.readyAt = at
	if a.readyIdx < 0 {
		a.readyIdx = int32(len(s.ready))
		s.ready = append(s.ready, a)
		s.rup(int(a.readyIdx))
		return
	}
	s.rup(int(a.readyIdx))
	s.rdown(int(a.readyIdx))
}

func (s *Schedule) readyRemove(a *account) {
	i := int(a.readyIdx)
	if i < 0 {
		return
	}
	a.readyIdx = -1
	last := len(s.ready) - 1
	if i != last {
		s.ready[i] = s.ready[last]
		s.ready[i].readyIdx = int32(i)
	}
	s.ready[last] = nil
	s.ready = s.ready[:last]
	if i != last {
		s.rup(i)
		s.rdown(i)
	}
}

func (s *Schedule) rup(i int) {
	r := s.ready
	for i > 0 {
		p := (i - 1) / 2
		if r[p].readyAt <= r[i].readyAt {
			break
		}
		r[p], r[i] = r[i], r[p]
		r[p].readyIdx, r[i].readyIdx = int32(p), int32(i)
		i = p
	}
}

func (s *Schedule) rdown(i int) {
	r := s.ready
	n := len(r)
	for {
		m := i
		if c := 2*i + 1; c < n && r[c].readyAt < r[m].readyAt {
			m = c
		}
		if c := 2*i + 2; c < n && r[c].readyAt < r[m].readyAt {
			m = c
		}
		if m == i {
			return
		}
		r[m], r[i] = r[i], r[m]
		r[m].readyIdx, r[i].readyIdx = int32(m), int32(i)
		i = m
	}
}
