import LoadGenerator

/// Deterministic pseudo-random numbers from a request index, so that every target gets exactly
/// the same sequence of requests.
enum Mix {
    /// SplitMix64 of `x`, as a Double in [0, 1).
    static func unit(_ x: UInt64) -> Double {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z = z ^ (z >> 31)
        return Double(z >> 11) / Double(1 << 53)
    }
}

/// Ranks 1...n drawn with probability ∝ 1/rank^s (s = 1: the classic "a few items get most of the traffic").
struct Zipf: Sendable {
    private let cdf: [Double]

    init(n: Int, s: Double) {
        var acc = 0.0
        var cdf = [Double]()
        cdf.reserveCapacity(n)
        for k in 1...n {
            acc += 1 / pow(Double(k), s)
            cdf.append(acc)
        }
        self.cdf = cdf.map { $0 / acc }
    }

    /// The rank (1-based) for a uniform `u` in [0, 1).
    func rank(_ u: Double) -> Int {
        var lo = 0, hi = cdf.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cdf[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo + 1
    }
}

/// The realistic mix of `users` and `shield`: Zipf-distributed public catalog items, and each
/// user's own resources (Zipf over users too: some users are much busier than others).
struct UsersMix: Sendable {
    var catalogItems: Int
    var catalogSkew: Double
    var users: Int
    var userSkew: Double
    /// Fraction of requests that are per-user.
    var perUserShare: Double
    private let catalog: Zipf
    private let people: Zipf
    /// Keeps phases apart (Redis prefixes already do; this keeps the backend's per-path counts apart).
    let salt: UInt64

    init(catalogItems: Int, catalogSkew: Double, users: Int, userSkew: Double, perUserShare: Double, salt: UInt64 = 0) {
        self.catalogItems = catalogItems
        self.catalogSkew = catalogSkew
        self.users = users
        self.userSkew = userSkew
        self.perUserShare = perUserShare
        self.catalog = Zipf(n: catalogItems, s: catalogSkew)
        self.people = Zipf(n: users, s: userSkew)
        self.salt = salt
    }

    enum Pick: Hashable {
        case item(Int)
        case user(Int)
    }

    func pick(_ i: Int) -> Pick {
        let base = UInt64(i) &* 3 &+ salt
        if Mix.unit(base) < perUserShare {
            return .user(people.rank(Mix.unit(base &+ 1)))
        }
        return .item(catalog.rank(Mix.unit(base &+ 2)))
    }

    func request(_ i: Int) -> LoadRequest {
        switch pick(i) {
        case .item(let k): LoadRequest.get("/catalog/items/\(k)")
        case .user(let u): LoadRequest.get("/users/\(u)/resources", headers: [("Authorization", "Bearer token-of-user-\(u)")])
        }
    }

    /// How many different cache keys requests 0..<count ask for.
    func distinctKeys(_ count: Int) -> Int { distinctKeys([0..<count]) }

    /// How many different cache keys the requests of these index ranges ask for.
    func distinctKeys(_ ranges: [Range<Int>]) -> Int {
        var seen = Set<Pick>()
        for range in ranges { for i in range { seen.insert(pick(i)) } }
        return seen.count
    }

    var description: String {
        "\(Int((1 - perUserShare) * 100)) % catalog items (Zipf s=\(catalogSkew) over \(Format.count(catalogItems))), "
            + "\(Int(perUserShare * 100)) % per-user resources (\(Format.count(users)) users, Zipf s=\(userSkew))"
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension LoadRequest {
    /// A GET, through the load generator's memberwise initializer (the one its API promises).
    static func get(_ target: String, headers: [(String, String)] = []) -> LoadRequest {
        LoadRequest(method: "GET", target: target, headers: headers)
    }
}
