import Dispatch
import Foundation
import GatewayUpstream
import XCTest

typealias UpstreamResult = Result<UpstreamResponse, UpstreamError>

/// A client on its own serial queue, with blocking helpers for tests: requests are issued on the
/// queue, results are collected there, and the test thread waits on a semaphore.
final class ClientHarness: @unchecked Sendable {
    let queue = DispatchQueue(label: "upstream-test-loop")
    let client: UpstreamClient

    init(_ configuration: UpstreamConfiguration) {
        client = UpstreamClient(configuration: configuration, queue: queue)
    }

    convenience init(baseURL: String, connectTimeout: Duration = .seconds(2), timeout: Duration = .seconds(10),
                     maxConnections: Int = 8, maxQueued: Int = 256, maxResponseBodyBytes: Int = 8 << 20) {
        self.init(UpstreamConfiguration(baseURL: baseURL, connectTimeout: connectTimeout, timeout: timeout,
                                        maxConnections: maxConnections, maxQueued: maxQueued,
                                        maxResponseBodyBytes: maxResponseBodyBytes))
    }

    /// Results collected on the queue: every completion call is counted.
    final class Calls: @unchecked Sendable {
        var results: [UpstreamResult?]
        var callCounts: [Int]
        var order: [Int] = []
        var finishedAt: [UInt64]
        var remaining: Int
        init(_ n: Int) {
            finishedAt = Array(repeating: 0, count: n)
            results = Array(repeating: nil, count: n)
            callCounts = Array(repeating: 0, count: n)
            remaining = n
        }
    }

    /// Issues all requests at once (in one turn of the queue) and waits until each has completed.
    /// Fails the test if a completion is missing after `timeout` or called twice.
    func run(_ requests: [UpstreamRequest], timeout: TimeInterval = 30, file: StaticString = #filePath, line: UInt = #line) -> [UpstreamResult] {
        let calls = Calls(requests.count)
        let done = DispatchSemaphore(value: 0)
        queue.async { [client] in
            for (i, request) in requests.enumerated() {
                client.execute(request) { result in
                    calls.callCounts[i] += 1
                    calls.results[i] = result
                    calls.order.append(i)
                    calls.remaining -= 1
                    if calls.remaining == 0 { done.signal() }
                }
            }
        }
        let finished = done.wait(timeout: .now() + timeout) == .success
        XCTAssertTrue(finished, "not every request completed within \(timeout) s", file: file, line: line)
        return queue.sync {
            XCTAssertEqual(calls.callCounts.filter { $0 != 1 }.count, 0, "completions not called exactly once: \(calls.callCounts)", file: file, line: line)
            return calls.results.map { $0 ?? .failure(UpstreamError.shutdown) }
        }
    }

    func run(_ request: UpstreamRequest, timeout: TimeInterval = 30, file: StaticString = #filePath, line: UInt = #line) -> UpstreamResult {
        run([request], timeout: timeout, file: file, line: line)[0]
    }

    func shutdown() {
        queue.sync { client.shutdown() }
    }
}

extension Result {
    var success: Success? { if case .success(let v) = self { v } else { nil } }
    var failure: Failure? { if case .failure(let e) = self { e } else { nil } }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
func eventually(timeout: TimeInterval = 5, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return condition()
}

func elapsed(_ body: () -> Void) -> TimeInterval {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}
