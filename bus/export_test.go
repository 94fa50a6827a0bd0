package bus

// BatcherQueued is the number of messages of key waiting in b (for tests).
func BatcherQueued(b *Batcher, key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if g := b.groups[key]; g != nil {
		return len(g.pending)
	}
	return 0
}
