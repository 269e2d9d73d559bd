/// The bench's end-to-end helpers: the real `tcp_chat` binary run with bounded waits on
/// its output (processes, pipes, deadlines and the binary's path are in TestSupport).
import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Reads a child's stdout and stderr to their ends (or a deadline), both at once so
/// neither pipe can fill up and stall the child.
struct CapturedOutput {
    var stdout = ""
    var stderr = ""
}

func readBoth(_ out: Int32, _ err: Int32, deadline: Deadline) -> (CapturedOutput, finished: Bool) {
    var bytes: [[UInt8]] = [[], []]
    var open = [true, true]
    let fds = [out, err]
    var buf = [UInt8](repeating: 0, count: 65536)
    while open[0] || open[1] {
        var p = (0..<2).map { pollfd(fd: open[$0] ? fds[$0] : -1, events: Int16(POLLIN), revents: 0) }
        let rc = poll(&p, 2, deadline.pollMilliseconds)
        if rc < 0 && errno == EINTR { continue }
        if rc <= 0 { break }
        for k in 0..<2 where open[k] && p[k].revents != 0 {
            let n = buf.withUnsafeMutableBytes { read(fds[k], $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { open[k] = false } else { bytes[k].append(contentsOf: buf[..<n]) }
        }
    }
    let o = CapturedOutput(stdout: String(decoding: bytes[0], as: UTF8.self), stderr: String(decoding: bytes[1], as: UTF8.self))
    return (o, !open[0] && !open[1])
}

/// `tcp_chat ARGS` run to its end within `timeout`: exit status and output.
struct Finished {
    let status: Int32
    let output: CapturedOutput
    var stdout: String { output.stdout }
    var stderr: String { output.stderr }

    /// The JSON object `--json` prints.
    func json() throws -> [String: Any] {
        guard let line = stdout.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw E2EError("no JSON object on stdout (status \(status)):\n\(stdout)\n--- stderr ---\n\(stderr)")
        }
        return obj
    }
}

/// `tcp_chat ARGS` still running, its output read on demand.
final class RunningTCPChat {
    let child: ChildProcess
    private let out: PipePair, err: PipePair
    private(set) var stderrSoFar: [UInt8] = []

    init(_ arguments: [String]) throws {
        _ = ignoreSIGPIPE
        out = try PipePair()
        err = try PipePair()
        child = try ChildProcess(executable: try NodeBinary.path(), arguments: arguments, stdout: out.writeEnd, stderr: err.writeEnd)
        close(out.writeEnd)
        close(err.writeEnd)
    }

    deinit {
        child.killAndReap()
        close(out.readEnd)
        close(err.readEnd)
    }

    /// Reads stderr until it holds `needle` (true) or the deadline passes or it ends (false).
    func waitForStderr(_ needle: String, timeout: Duration) -> Bool {
        let deadline = Deadline(timeout)
        var buf = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: stderrSoFar, as: UTF8.self).contains(needle) {
            var p = pollfd(fd: err.readEnd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&p, 1, deadline.pollMilliseconds)
            if rc < 0 && errno == EINTR { continue }
            if rc <= 0 { return false }
            let n = buf.withUnsafeMutableBytes { read(err.readEnd, $0.baseAddress!, $0.count) }
            if n <= 0 { return false }
            stderrSoFar.append(contentsOf: buf[..<n])
        }
        return true
    }

    /// Reads the rest of the output and waits for the exit, within `timeout`.
    func finish(timeout: Duration) throws -> Finished {
        let deadline = Deadline(timeout)
        var (output, _) = readBoth(out.readEnd, err.readEnd, deadline: deadline)
        output.stderr = String(decoding: stderrSoFar, as: UTF8.self) + output.stderr
        guard child.waitForExit(timeout: .milliseconds(max(Int(deadline.pollMilliseconds), 100))), let code = child.exitCode else {
            child.killAndReap()
            throw E2EError("tcp_chat did not finish within \(timeout) (\(child.statusText))\n\(output.stdout)\n--- stderr ---\n\(output.stderr)")
        }
        return Finished(status: code, output: output)
    }
}

func runTCPChat(_ arguments: [String], timeout: Duration) throws -> Finished {
    _ = ignoreSIGPIPE
    let out = try PipePair(), err = try PipePair()
    let child = try ChildProcess(executable: try NodeBinary.path(), arguments: arguments, stdout: out.writeEnd, stderr: err.writeEnd)
    close(out.writeEnd)
    close(err.writeEnd)
    defer {
        close(out.readEnd)
        close(err.readEnd)
    }
    let deadline = Deadline(timeout)
    let (output, _) = readBoth(out.readEnd, err.readEnd, deadline: deadline)
    guard child.waitForExit(timeout: .milliseconds(max(Int(deadline.pollMilliseconds), 100))), let code = child.exitCode else {
        child.killAndReap()
        throw E2EError("`tcp_chat \(arguments.joined(separator: " "))` did not finish within \(timeout) (\(child.statusText))\n\(output.stdout)\n--- stderr ---\n\(output.stderr)")
    }
    return Finished(status: code, output: output)
}

/// A real node: `tcp_chat server -a 127.0.0.1 -p 0 FLAGS`, stopped with SIGTERM at the end.
final class TestNode {
    let child: ChildProcess
    let port: Int
    private let stdout: PipePair

    init(_ flags: [String] = ["--rate-limit", "0"]) throws {
        _ = ignoreSIGPIPE
        let pipe = try PipePair()
        stdout = pipe
        child = try ChildProcess(executable: try NodeBinary.path(), arguments: ["server", "-a", "127.0.0.1", "-p", "0"] + flags,
                                 stdout: pipe.writeEnd)
        close(pipe.writeEnd)
        // `listening on 127.0.0.1:40123`, within 10 s.
        let deadline = Deadline(.seconds(10))
        var text: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while !text.contains(0x0A) {
            var p = pollfd(fd: pipe.readEnd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&p, 1, deadline.pollMilliseconds)
            if rc < 0 && errno == EINTR { continue }
            if rc <= 0 { break }
            let n = buf.withUnsafeMutableBytes { read(pipe.readEnd, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            text.append(contentsOf: buf[..<n])
        }
        let line = String(decoding: text, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        guard line.hasPrefix("listening on "), let colon = line.lastIndex(of: ":"),
              let p = Int(line[line.index(after: colon)...]) else {
            child.killAndReap()
            close(pipe.readEnd)
            throw E2EError("the node printed \"\(line)\" instead of `listening on HOST:PORT` (\(child.statusText))")
        }
        port = p
    }

    /// SIGTERM, then the exit status (killed after 5 s).
    func stop() -> Int32? {
        child.send(signal: SIGTERM)
        if !child.waitForExit(timeout: .seconds(5)) { child.killAndReap() }
        return child.exitCode
    }

    deinit {
        child.killAndReap()
        close(stdout.readEnd)
    }
}
