internal import CCurl

/// The libcurl this runs with (its own version string, e.g. `libcurl/7.88.1 OpenSSL/3.0.15 …`),
/// for `gateway --version`.
public enum UpstreamLibrary {
    public static var version: String { String(cString: curl_version()) }
}
