/// What a run measured.
///
/// Every started request ends as exactly one of: a response (`requests`, whatever its status),
/// an error (`errors`: refused or failed connection, reset, truncated or unparsable response) or
/// a timeout (`timeouts`). Requests in flight when ``LoadGenerator/requestStop()`` is called are
/// in none of them.
public struct LoadResult: Sendable, Codable, Equatable {
    /// Complete responses received (any status).
    public var requests: Int
    /// Requests that failed without a complete response (timeouts not included).
    public var errors: Int
    /// Requests that got no complete response within the spec's `timeout`.
    public var timeouts: Int
    /// Responses by status code.
    public var statuses: [Int: Int]
    /// Responses by their `Cache-Status` header value, trimmed, e.g. `CacheGateway; hit` or
    /// `CacheGateway; fwd=miss; collapsed`. Responses without the header are not counted here.
    public var cacheStatus: [String: Int]
    /// Errors by kind: `connect`, `write`, `read`, `closed` (the server closed before the response
    /// was complete), `invalid` (not a parsable HTTP/1.1 response).
    public var errorKinds: [String: Int]
    /// The first error, for people, e.g. `connect: Connection refused`.
    public var firstError: String?
    /// Response body bytes received (after removing chunked framing; heads not included).
    public var bytes: Int
    /// Connections opened again after the server closed one (`Connection: close`, a dropped
    /// keep-alive connection) or after an error or timeout.
    public var reconnects: Int
    /// Connections opened in all.
    public var connectionsOpened: Int
    /// From the first request to the last response (or to the stop).
    public var elapsedSeconds: Double
    /// `requests / elapsedSeconds`.
    public var requestsPerSecond: Double
    /// Latency of the complete responses, in microseconds.
    public var latency: LatencySummary
    /// Every answer, ordered by when it was due, when the spec asked for them
    /// (``LoadSpec/recordSamples``); nil otherwise.
    public var samples: [LoadSample]? = nil

    public init(
        requests: Int = 0, errors: Int = 0, timeouts: Int = 0, statuses: [Int: Int] = [:],
        cacheStatus: [String: Int] = [:], errorKinds: [String: Int] = [:], firstError: String? = nil, bytes: Int = 0,
        reconnects: Int = 0, connectionsOpened: Int = 0, elapsedSeconds: Double = 0,
        requestsPerSecond: Double = 0, latency: LatencySummary = LatencySummary()
    ) {
        self.requests = requests
        self.errors = errors
        self.timeouts = timeouts
        self.statuses = statuses
        self.cacheStatus = cacheStatus
        self.errorKinds = errorKinds
        self.firstError = firstError
        self.bytes = bytes
        self.reconnects = reconnects
        self.connectionsOpened = connectionsOpened
        self.elapsedSeconds = elapsedSeconds
        self.requestsPerSecond = requestsPerSecond
        self.latency = latency
    }
}

/// One answered request (``LoadSpec/recordSamples``).
public struct LoadSample: Sendable, Codable, Equatable {
    /// When the request was due (open loop: its scheduled time) or written (closed loop), in µs
    /// since the run's start.
    public var startMicros: Int
    /// From `startMicros` to the complete response.
    public var latencyMicros: Int
    public var status: Int
    /// Its `Cache-Status` value, as in ``LoadResult/cacheStatus``; nil without one.
    public var cacheStatus: String?

    public init(startMicros: Int, latencyMicros: Int, status: Int, cacheStatus: String?) {
        self.startMicros = startMicros
        self.latencyMicros = latencyMicros
        self.status = status
        self.cacheStatus = cacheStatus
    }
}

/// A latency distribution in microseconds, summarised from an HDR histogram (3 significant
/// digits: each value is within 0.1 % of the true one).
public struct LatencySummary: Sendable, Codable, Equatable {
    /// One point of the percentile distribution: `percentile` % of the responses took at most
    /// `micros`.
    public struct Point: Sendable, Codable, Equatable {
        public var percentile: Double
        public var micros: Int
        public init(percentile: Double, micros: Int) {
            self.percentile = percentile
            self.micros = micros
        }
    }

    /// Values recorded (complete responses).
    public var count: Int
    public var min: Int
    public var p50: Int
    public var p90: Int
    public var p99: Int
    public var p999: Int
    public var max: Int
    public var mean: Double
    /// The distribution for charts, with more points towards the tail: percentiles 0, 50, 75,
    /// 87.5, … (each step halves the distance to 100) up to 100.
    public var distribution: [Point]

    public init(count: Int = 0, min: Int = 0, p50: Int = 0, p90: Int = 0, p99: Int = 0, p999: Int = 0,
                max: Int = 0, mean: Double = 0, distribution: [Point] = []) {
        self.count = count
        self.min = min
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.max = max
        self.mean = mean
        self.distribution = distribution
    }
}

/// A snapshot during a run, passed to the `progress` callback about once a second.
public struct LoadProgress: Sendable {
    /// Since the first request.
    public var elapsedSeconds: Double
    /// Complete responses so far.
    public var requests: Int
    /// Responses per second over the last interval.
    public var currentRequestsPerSecond: Double
    public var errors: Int
    public var timeouts: Int
}
