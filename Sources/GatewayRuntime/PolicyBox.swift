import Synchronization

/// The gateway's current policy, shared by every loop and replaced whole by a reload: a request
/// reads the reference once, under one short lock.
final class PolicyBox: Sendable {
    private let value: Mutex<Gateway.Policy>
    init(_ policy: Gateway.Policy) { value = Mutex(policy) }
    var current: Gateway.Policy { value.withLock { $0 } }
    func replace(_ policy: Gateway.Policy) { value.withLock { $0 = policy } }
}
