internal import Foundation

/// The dashboard's files (`Dashboard/` in this target), served from memory.
///
/// SwiftPM copies them into `genflow_GenflowAPI.resources/` beside the binary; `make install` puts
/// them in `PREFIX/share/genflow/dashboard`. They are looked up
/// here rather than through `Bundle.module`, whose accessor stops the process when the folder is
/// missing: a daemon installed without it still serves its API, and `/` answers 503 saying why.
/// `GENFLOW_DASHBOARD_DIR` points at another copy (a frontend developer's working tree).
enum Dashboard {
    static let types = ["html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"]

    /// Only these headers' sources: the page, its script and style sheet, same-origin API calls and
    /// WebSocket, images from the API or from a provider's URL.
    static let headers: [(String, String)] = [
        ("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob: https:; connect-src 'self' ws: wss:; frame-ancestors 'none'"),
        ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-cache"), ("Referrer-Policy", "no-referrer"),
    ]

    static let files: Result<[String: [UInt8]], APIError> = {
        guard let directory = directory() else {
            return .failure(APIError(503, "dashboard_missing", "the dashboard's files are neither beside the genflow binary (genflow_GenflowAPI.resources/Dashboard) nor in ../share/genflow/dashboard; copy them there or set GENFLOW_DASHBOARD_DIR"))
        }
        var files: [String: [UInt8]] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where types[(name as NSString).pathExtension] != nil {
            if let data = FileManager.default.contents(atPath: "\(directory)/\(name)") { files[name] = [UInt8](data) }
        }
        return .success(files)
    }()

    static func directory() -> String? {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let binaries = (executable as NSString).deletingLastPathComponent as NSString
        let candidates = [
            ProcessInfo.processInfo.environment["GENFLOW_DASHBOARD_DIR"],
            binaries.appendingPathComponent("genflow_GenflowAPI.resources/Dashboard"),
            // Installed (`make install`): PREFIX/bin/genflow and PREFIX/share/genflow/dashboard.
            (binaries.deletingLastPathComponent as NSString).appendingPathComponent("share/genflow/dashboard"),
        ]
        return candidates.compactMap { $0 }.first { FileManager.default.fileExists(atPath: "\($0)/index.html") }
    }

    /// One file as a reply; unknown names are 404.
    static func reply(_ name: String) throws(APIError) -> Reply {
        let files = try files.get()
        guard let bytes = files[name], let type = types[(name as NSString).pathExtension] else { throw APIError.notFound("dashboard file") }
        return Reply(status: 200, raw: (type, bytes), headers: headers)
    }
}
