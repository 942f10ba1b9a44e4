internal import CHiredis

/// The hiredis this was built against, for `gateway --version`.
public enum RedisLibrary {
    public static var version: String { "hiredis \(HIREDIS_MAJOR).\(HIREDIS_MINOR).\(HIREDIS_PATCH)" }
}
