extension RedisConfiguration {
    /// For a cluster (``clusterSeeds`` set): this configuration pointed at the master that serves
    /// `key`'s slot, found by asking the seeds for `CLUSTER SLOTS` in order (blocking; for the
    /// listeners' own threads, never an event loop). Standalone: `self`. Fails with the last
    /// seed's error when none answers, or ``RedisError/protocolError(_:)`` when no master serves
    /// the slot.
    func locatingClusterNode(owning key: [UInt8], replyTimeout: Duration) -> Result<RedisConfiguration, RedisError> {
        guard !clusterSeeds.isEmpty else { return .success(self) }
        var lastError = RedisError.notConnected
        for seed in clusterSeeds {
            var asked = self
            asked.host = seed.host
            asked.port = seed.port
            let reply = BlockingRedisConnection.connect(asked, replyTimeout: replyTimeout).flatMap { connection in
                connection.command([Array("CLUSTER".utf8), Array("SLOTS".utf8)], timeout: replyTimeout)
            }
            do throws(RedisError) {
                let map = try ClusterSlotMap(clusterSlots: reply.get(), queriedHost: seed.host)
                guard let owner = map.node(forSlot: ClusterSlots.slot(of: key)) else {
                    return .failure(.protocolError("no cluster node serves slot \(ClusterSlots.slot(of: key))"))
                }
                var located = self
                located.host = owner.host
                located.port = owner.port
                return .success(located)
            } catch {
                lastError = error
            }
        }
        return .failure(lastError)
    }
}
