extension RedisConfiguration {
    /// For a cluster (``clusterSeeds`` set): this configuration pointed at the master that serves
    /// `key`'s slot, found by asking the seeds for `CLUSTER SLOTS` in order (blocking; for the
    /// listeners' own threads, never an event loop). Standalone: `self`. Fails with the last
    /// seed's error when none answers, or ``RedisError/protocolError(_:)`` when no master serves
    /// the slot.
    func locatingClusterNode(owning key: [UInt8], replyTimeout: Duration) -> Result<RedisConfiguration, RedisError> {
        guard !clusterSeeds.isEmpty else { return .success(self) }
        return clusterSlotMap(replyTimeout: replyTimeout).flatMap { map in
            guard let owner = map.node(forSlot: ClusterSlots.slot(of: key)) else {
                return .failure(.protocolError("no cluster node serves slot \(ClusterSlots.slot(of: key))"))
            }
            return .success(pointed(at: owner))
        }
    }

    /// The slot map of the first seed that answers `CLUSTER SLOTS` (blocking, one short
    /// connection per seed asked). Fails with the last seed's error when none answers.
    func clusterSlotMap(replyTimeout: Duration) -> Result<ClusterSlotMap, RedisError> {
        var lastError = RedisError.notConnected
        for seed in clusterSeeds {
            switch clusterSlotMap(askingSeed: seed, replyTimeout: replyTimeout) {
            case .success(let map): return .success(map)
            case .failure(let error): lastError = error
            }
        }
        return .failure(lastError)
    }

    /// The slot map as `node` tells it (`CLUSTER SLOTS` on one short connection, after the
    /// configuration's AUTH; blocking). For `check-config --connect`, which asks every seed.
    public func clusterSlotMap(askingSeed node: ClusterNode, replyTimeout: Duration) -> Result<ClusterSlotMap, RedisError> {
        let reply = BlockingRedisConnection.connect(pointed(at: node), replyTimeout: replyTimeout).flatMap { connection in
            connection.command([Array("CLUSTER".utf8), Array("SLOTS".utf8)], timeout: replyTimeout)
        }
        do throws(RedisError) {
            return .success(try ClusterSlotMap(clusterSlots: reply.get(), queriedHost: node.host))
        } catch {
            return .failure(error)
        }
    }

    /// This configuration (password, timeouts, backoff) for one node of the cluster.
    public func pointed(at node: ClusterNode) -> RedisConfiguration {
        var pointed = self
        pointed.host = node.host
        pointed.port = node.port
        return pointed
    }
}
