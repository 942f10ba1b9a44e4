import Foundation
import LoadGenerator

/// One scenario of the benchmark: starts what it needs, measures every target, checks its invariants.
protocol Scenario {
    /// The command-line name: hit, miss, herd, users, local-soak, shield, expiry, outage, invalidate, scale.
    static var name: String { get }
    static func run(_ context: BenchContext) throws -> ScenarioReport
}

enum Scenarios {
    /// In the order `all` runs them.
    static var all: [any Scenario.Type] {
        [HitScenario.self, MissScenario.self, HerdScenario.self, UsersScenario.self, LocalSoakScenario.self, ShieldScenario.self,
         ExpiryScenario.self, OutageScenario.self, InvalidateScenario.self, ScaleScenario.self]
    }
    static var names: [String] { all.map { $0.name } }

    static func named(_ name: String) -> (any Scenario.Type)? { all.first { $0.name == name } }
}

/// The checks a scenario collects; a broken one fails the run.
struct Checks {
    let scenario: String
    private(set) var list: [Check] = []

    init(_ scenario: String) { self.scenario = scenario }

    /// Records `name` for `target`: `detail` says what was measured, pass or fail.
    mutating func expect(_ condition: Bool, _ target: Target?, _ name: String, _ detail: String) {
        list.append(Check(scenario: scenario, target: target, name: name, passed: condition, detail: detail))
    }

    /// The common ones: every request answered, with a 200.
    mutating func expectAllOK(_ result: LoadOutcome, _ target: Target, what: String = "every request answered 200") {
        let bad = result.failed + result.nonOK
        expect(bad == 0 && result.requests > 0, target, what,
               "\(result.requests) answered, \(result.ok) × 200, \(result.errors) errors, \(result.timeouts) timeouts"
                   + (result.nonOK > 0 ? ", statuses \(result.statuses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " "))" : ""))
    }
}

extension BenchContext {
    /// "gateway  38,120 req/s  p50 1.2 ms  p99 3.4 ms  backend calls 0"
    func sayRun(_ label: String, _ target: Target, _ result: LoadOutcome, backendCalls: Int) {
        let line = "   " + label.padding(toLength: 16, withPad: " ", startingAt: 0)
            + target.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            + "\(Format.count(result.requests)) answered, \(Format.rate(result.requestsPerSecond)) req/s, p50 \(result.ms(\.p50)), p99 \(result.ms(\.p99))"
            + (result.failed > 0 ? ", \(result.errors) errors, \(result.timeouts) timeouts" : "")
            + ", backend calls \(Format.count(backendCalls))"
        say(line)
    }
}
