import XCTest

/// A strict reader of the Prometheus text format (version 0.0.4), for the metrics tests: every
/// sample must belong to a family declared by a `# TYPE` line before it, and every line must parse.
struct PrometheusExposition {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    struct ParseError: Error, CustomStringConvertible {
        var line: Int
        var text: String
        var reason: String
        var description: String { "line \(line): \(reason): \(text)" }
    }

    /// Family name to type (`counter`, `gauge`, `histogram`, …).
    private(set) var types: [String: String] = [:]
    private(set) var samples: [Sample] = []

    init(_ text: String) throws {
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fail = { (reason: String) in ParseError(line: number + 1, text: String(line), reason: reason) }
            if line.isEmpty { continue }
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4 else { throw fail("malformed TYPE line") }
                guard types.updateValue(String(parts[3]), forKey: String(parts[2])) == nil else { throw fail("family declared twice") }
                continue
            }
            if line.hasPrefix("#") { continue }
            var scanner = Substring(line)
            let name = String(scanner.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" })
            guard !name.isEmpty else { throw fail("no metric name") }
            scanner = scanner.dropFirst(name.count)
            var labels: [String: String] = [:]
            if scanner.first == "{" {
                scanner = scanner.dropFirst()
                while scanner.first != "}" {
                    let label = String(scanner.prefix { $0.isLetter || $0.isNumber || $0 == "_" })
                    scanner = scanner.dropFirst(label.count)
                    guard !label.isEmpty, scanner.hasPrefix("=\"") else { throw fail("malformed label") }
                    scanner = scanner.dropFirst(2)
                    var value = ""
                    while let c = scanner.first, c != "\"" {
                        scanner = scanner.dropFirst()
                        if c == "\\" {
                            guard let escaped = scanner.popFirst() else { throw fail("dangling escape") }
                            value.append(escaped == "n" ? "\n" : escaped)
                        } else {
                            value.append(c)
                        }
                    }
                    guard scanner.popFirst() == "\"" else { throw fail("unterminated label value") }
                    guard labels.updateValue(value, forKey: label) == nil else { throw fail("label repeated") }
                    if scanner.first == "," { scanner = scanner.dropFirst() }
                }
                scanner = scanner.dropFirst()
            }
            guard scanner.popFirst() == " ", let value = Double(scanner) else { throw fail("no value") }
            guard family(of: name) != nil else { throw fail("sample of an undeclared family") }
            samples.append(Sample(name: name, labels: labels, value: value))
        }
    }

    /// The declared family a sample name belongs to (a histogram's `_bucket`, `_sum`, `_count`).
    func family(of sampleName: String) -> String? {
        if types[sampleName] != nil { return sampleName }
        for suffix in ["_bucket", "_sum", "_count"] where sampleName.hasSuffix(suffix) {
            let base = String(sampleName.dropLast(suffix.count))
            if types[base] == "histogram" { return base }
        }
        return nil
    }

    /// The one sample of `name` with exactly these labels; fails the test when there is none.
    func value(_ name: String, _ labels: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) -> Double {
        let matching = samples.filter { $0.name == name && $0.labels == labels }
        XCTAssertEqual(matching.count, 1, "\(name)\(labels): \(matching.count) samples", file: file, line: line)
        return matching.first?.value ?? .nan
    }

    /// A histogram series' buckets in order of `le`, the `+Inf` one last.
    func buckets(_ name: String, _ labels: [String: String]) -> [(le: Double, count: Double)] {
        samples.filter { $0.name == name + "_bucket" && $0.labels.filter { $0.key != "le" } == labels }
            .map { (le: Double($0.labels["le"]!.replacingOccurrences(of: "+Inf", with: "inf"))!, count: $0.value) }
            .sorted { $0.le < $1.le }
    }

    /// Every value of label `label` across all samples.
    func labelValues(_ label: String) -> Set<String> { Set(samples.compactMap { $0.labels[label] }) }
}
