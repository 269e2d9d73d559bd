/// Browsers (docs/protocol.md, "Web clients"), end to end against the real binary:
/// Tests/web/ws_edge.py (WebSocket edge cases with Python's `websockets`, and raw frames)
/// and Tests/web/browser.py (the page in headless Chromium, driven by Playwright). Without
/// python3, the packages or Chromium they are skipped, unless `CI` is set: then they fail.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct WebTests {
    static var isCI: Bool { !(ProcessInfo.processInfo.environment["CI"] ?? "").isEmpty }

    /// Why python3 cannot import `modules`, or nil.
    static func pythonMissing(_ modules: [String]) -> String? {
        guard let python = executableOnPath("python3") else { return "python3 not found" }
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(null) }
        let child = try? ChildProcess(executable: python, arguments: ["-c", "import " + modules.joined(separator: ", ")],
                                      stdout: null, stderr: null)
        guard let child, child.waitForExit(timeout: .seconds(30)) else { return "python3 did not start" }
        return child.exitCode == 0 ? nil : "python3 cannot import \(modules.joined(separator: ", ")) (pip install \(modules.joined(separator: " ")))"
    }

    static var chromium: String? {
        ProcessInfo.processInfo.environment["TCP_CHAT_CHROMIUM"] ?? executableOnPath("chromium")
    }

    static let wsMissing: String? = pythonMissing(["websockets"])
    static let browserMissing: String? = {
        if let why = pythonMissing(["playwright"]) { return why }
        return chromium == nil ? "chromium not found (apt-get install chromium)" : nil
    }()

    static func enabled(_ missing: String?, _ what: String) -> Bool {
        if let why = missing, !isCI {
            print("skipping \(what): \(why)")
            return false
        }
        return true
    }

    /// Runs `python3 Tests/web/<script> --bin <tcp_chat> <extra>`, bounded by `limit`.
    func runScript(_ script: String, _ extra: [String] = [], limit: Duration) throws -> (exit: Int32, output: String) {
        let binary = try NodeBinary.path()
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("web/\(script)").path
        guard FileManager.default.fileExists(atPath: path) else { throw E2EError("missing \(path)") }
        let outPath = FileManager.default.temporaryDirectory.appendingPathComponent("tcp_chat-web-\(UUID().uuidString).log").path
        let outFD = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard outFD >= 0 else { throw E2EError("cannot create \(outPath): \(errnoText())") }
        defer { unlink(outPath) }
        let child = try ChildProcess(executable: executableOnPath("python3")!, arguments: ["-u", path, "--bin", binary] + extra,
                                     stdout: outFD, stderr: outFD)
        close(outFD)
        defer { child.killAndReap() }
        if !child.waitForExit(timeout: limit) {
            // The scripts stop their nodes on SIGTERM (their `finally`).
            _ = kill(-child.pid, SIGTERM)
            if !child.waitForExit(timeout: .seconds(10)) { _ = kill(-child.pid, SIGKILL) }
            child.killAndReap()
            return (-1, "\(script) did not finish within \(limit) (killed)\n" + (readWholeFile(outPath) ?? ""))
        }
        return (child.exitCode ?? -1, readWholeFile(outPath) ?? "")
    }

    @Test(.enabled("needs python3 with websockets (with CI set, its absence is a failure)") {
        WebTests.enabled(WebTests.wsMissing, "the WebSocket edge-case test")
    }, .timeLimit(.minutes(2)))
    func webSocketEdgeCasesEndToEnd() throws {
        if let why = Self.wsMissing { Issue.record("CI is set but the WebSocket test cannot run: \(why)"); return }
        let (exit, output) = try runScript("ws_edge.py", limit: .seconds(90))
        #expect(exit == 0, "ws_edge.py exited \(exit)\n\(output)")
        #expect(output.contains("ws_edge: ok"), "no `ws_edge: ok` line\n\(output)")
    }

    /// `https://` and `wss://` on the same port once TLS is configured (docs/tls.md).
    @Test(.enabled("needs python3 with websockets (with CI set, its absence is a failure)") {
        WebTests.enabled(WebTests.wsMissing, "the wss test")
    }, .timeLimit(.minutes(2)))
    func pageAndWebSocketOverTLS() throws {
        if let why = Self.wsMissing { Issue.record("CI is set but the wss test cannot run: \(why)"); return }
        let (exit, output) = try runScript("wss_check.py", limit: .seconds(60))
        #expect(exit == 0, "wss_check.py exited \(exit)\n\(output)")
        #expect(output.contains("wss_check: ok"), "no `wss_check: ok` line\n\(output)")
    }

    @Test(.enabled("needs python3 with playwright and chromium (with CI set, their absence is a failure)") {
        WebTests.enabled(WebTests.browserMissing, "the browser test")
    }, .timeLimit(.minutes(3)))
    func chatPageInHeadlessChromium() throws {
        if let why = Self.browserMissing { Issue.record("CI is set but the browser test cannot run: \(why)"); return }
        let shot = FileManager.default.temporaryDirectory.appendingPathComponent("tcp_chat-browser-\(UUID().uuidString).png").path
        defer { unlink(shot) }
        let (exit, output) = try runScript("browser.py", ["--chromium", Self.chromium!, "--screenshot", shot], limit: .seconds(150))
        print(output.split(separator: "\n").filter { $0.hasPrefix("browser: ok") }.joined(separator: "\n"))
        #expect(exit == 0, "browser.py exited \(exit)\n\(output)")
        #expect(output.contains("browser: ok"), "no `browser: ok` line\n\(output)")
        #expect(FileManager.default.fileExists(atPath: shot), "no screenshot at \(shot)")
    }
}
