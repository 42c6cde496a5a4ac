package proxy

// pickReplica chooses a replica of a shard for a client's read: 1 + its
// index, or 0 for the primary when none is usable.
func (s *Server) pickReplica(sess *session, shard int) int {
	return 0
}

// replicaFailed notes that a replica could not serve.
func (s *Server) replicaFailed(p *backendPool) {}
