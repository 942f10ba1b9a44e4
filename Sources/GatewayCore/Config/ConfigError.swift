import Yams

/// One problem found in a configuration file, positioned like a compiler diagnostic:
///
///     gateway.yaml:7:12: error: routes[1].ttl: invalid duration "5x" (expected a number followed by ms, s, m or h, e.g. 250ms, 30s, 5m)
///
/// `line` and `column` start at 1 (columns count Unicode scalars, as libyaml does); both are nil
/// only for problems with the file as a whole (it cannot be read, or it is empty).
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file name as given to the loader (`load(path:)` uses the path).
    public var file: String
    public var line: Int?
    public var column: Int?
    /// Where in the document: `routes[1].ttl`, `server.max_headers`; empty for the document itself.
    public var path: String
    /// What is wrong, and when it helps, what would be right.
    public var message: String

    public init(file: String, line: Int?, column: Int?, path: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.message = message
    }

    public var description: String {
        var text = file
        if let line {
            text += ":\(line)"
            if let column { text += ":\(column)" }
        }
        text += ": error: "
        if !path.isEmpty { text += path + ": " }
        return text + message
    }
}

/// Every problem found in a configuration file, in file order. Loading reports all of them at
/// once, so that one run of `gateway check-config` shows everything to fix.
public struct ConfigErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) {
        self.errors = errors
    }

    /// One diagnostic per line.
    public var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}

extension ConfigError {
    /// Turns a Yams/libyaml error into a positioned diagnostic.
    init(yamlError: YamlError, file: String, source: String) {
        func position(_ context: YamlError.Context?) -> String {
            guard let context else { return "" }
            return " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
        }
        switch yamlError {
        case let .composer(context, _, mark, _) where context?.text == "expected a single document in the stream":
            self.init(file: file, line: mark.line, column: mark.column, path: "",
                      message: "invalid YAML: expected a single document, found a second one")
        case let .scanner(context, problem, mark, _),
             let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            self.init(file: file, line: mark.line, column: mark.column, path: "",
                      message: "invalid YAML: \(problem)\(position(context))")
        case let .reader(problem, offset, _, _):
            let (line, column) = offset.map { ConfigError.lineAndColumn(ofCharacterOffset: $0, in: source) }
                ?? (nil, nil)
            self.init(file: file, line: line, column: column, path: "", message: "invalid YAML: \(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            let keys = duplicates.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
            let noun = duplicates.count == 1 ? "key" : "keys"
            self.init(file: file, line: context.mark.line, column: context.mark.column, path: "",
                      message: "duplicate \(noun) \(keys) in the same mapping")
        default:
            self.init(file: file, line: nil, column: nil, path: "", message: "invalid YAML: \(yamlError)")
        }
    }

    /// 1-based line and column (in Unicode scalars) of the character at `offset`.
    static func lineAndColumn(ofCharacterOffset offset: Int, in source: String) -> (Int?, Int?) {
        var line = 1
        var column = 1
        for (index, character) in source.enumerated() {
            if index == offset { return (line, column) }
            if character.isNewline {
                line += 1
                column = 1
            } else {
                column += character.unicodeScalars.count
            }
        }
        return (line, column)
    }
}

/// The closest candidate to a misspelt word, for "did you mean" hints: edit distance (with
/// transpositions, ignoring case) of at most 1 for words up to 4 characters, 2 beyond.
func closestMatch(to word: String, in candidates: [String]) -> String? {
    let target = Array(word.lowercased())
    let limit = target.count <= 4 ? 1 : 2
    var best: (candidate: String, distance: Int)?
    for candidate in candidates {
        let distance = editDistance(target, Array(candidate.lowercased()))
        if distance <= limit, distance < (best?.distance ?? Int.max) {
            best = (candidate, distance)
        }
    }
    return best?.candidate
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent swaps.
private func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous2 = [Int](repeating: 0, count: b.count + 1)
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                current[j] = min(current[j], previous2[j - 2] + 1)
            }
        }
        (previous2, previous, current) = (previous, current, previous2)
    }
    return previous[b.count]
}
