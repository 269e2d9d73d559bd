/// The binary every end-to-end test runs.
import Foundation

/// Where the `tcp_chat` executable under test is.
public enum NodeBinary {
    /// `TCP_CHAT_BIN` if set; else `tcp_chat` next to the test runner or bundle;
    /// else the package's `.build/debug/tcp_chat`.
    public static func path() throws -> String {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["TCP_CHAT_BIN"], !env.isEmpty {
            guard fm.isExecutableFile(atPath: env) else { throw E2EError("TCP_CHAT_BIN=\(env) is not an executable file") }
            return env
        }
        var candidates: [URL] = []
        if let arg0 = CommandLine.arguments.first {
            candidates.append(URL(fileURLWithPath: arg0).resolvingSymlinksInPath().deletingLastPathComponent())
        }
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        let bundle = Bundle.main.bundleURL
        candidates.append(bundle)
        candidates.append(bundle.deletingLastPathComponent())
        // Tests/TestSupport/NodeBinary.swift → package root
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug"))
        candidates.append(URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent(".build/debug"))
        let paths = candidates.map { $0.appendingPathComponent("tcp_chat").path }
        for p in paths where fm.isExecutableFile(atPath: p) { return p }
        throw E2EError("tcp_chat not found (set TCP_CHAT_BIN); looked at: \(paths.joined(separator: ", "))")
    }
}
