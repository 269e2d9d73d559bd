/// Helpers for the cluster end-to-end tests (docs/cluster-protocol.md): nodes started on a chosen port,
/// their peer links read from their logs, logins that may be refused, bounded convergence.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

/// A running `tcp_chat server -a 127.0.0.1 -p PORT ...`, where PORT may be fixed (a ring needs
/// every port before any node starts; a restarted node takes its old port back).
///
/// Like `NodeProcess`, `init` returns once the node printed `listening on HOST:PORT`; stderr
/// goes to a temp file; the process never outlives the object (`deinit` kills and reaps it).
final class ClusterNode {
    let name: String
    let port: Int
    let host = "127.0.0.1"
    let flags: [String]
    let stderrPath: String
    private let child: ChildProcess
    private let stdout: OutputPipe

    var pid: Int32 { child.pid }
    var address: String { "\(host):\(port)" }

    init(_ name: String, port: Int = 0, _ flags: [String] = [], startTimeout: Duration = .seconds(10)) throws {
        _ = ignoreSIGPIPE
        self.name = name
        self.flags = flags
        let binary = try NodeBinary.path()
        let args = ["server", "-a", "127.0.0.1", "-p", "\(port)", "--log-level", "notice"] + flags
        stderrPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("tcp_chat-cluster-\(name)-\(UUID().uuidString).stderr").path
        let errFD = open(stderrPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard errFD >= 0 else { throw E2EError("cannot create \(stderrPath): \(errnoText())") }
        defer { close(errFD) }
        stdout = try OutputPipe()
        child = try ChildProcess(executable: binary, arguments: args, stdout: stdout.childEnd, stderr: errFD)
        stdout.closeWriteEnd()

        let command = ([binary] + args).joined(separator: " ")
        guard stdout.waitFor("\n", timeout: startTimeout), let line = stdout.text.split(separator: "\n").first else {
            let why = child.hasExited ? child.statusText : "printed no line"
            child.killAndReap()
            let log = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            unlink(stderrPath)
            throw E2EError("node \(name): `\(command)` \(why) within \(startTimeout) instead of `listening on HOST:PORT`\n--- \(name) stderr ---\n\(log)")
        }
        guard line.hasPrefix("listening on "), let colon = line.lastIndex(of: ":"),
              let p = Int(line[line.index(after: colon)...]), p > 0, p < 65536 else {
            child.killAndReap()
            unlink(stderrPath)
            throw E2EError("node \(name): `\(command)` printed \"\(line)\" instead of `listening on HOST:PORT`")
        }
        guard port == 0 || p == port else {
            child.killAndReap()
            unlink(stderrPath)
            throw E2EError("node \(name): asked for port \(port), `listening on` says \(p)")
        }
        self.port = p
    }

    deinit {
        child.killAndReap()
        unlink(stderrPath)
    }

    var isRunning: Bool { !child.hasExited }

    /// Everything the node logged so far.
    var stderr: String { readWholeFile(stderrPath) ?? "" }

    func stderrTail(_ lines: Int = 30) -> String {
        stderr.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// The node's id, from its `node started` log line (`node=<16 hex>`).
    var nodeID: String? {
        for line in stderr.split(separator: "\n") where line.contains("node started") {
            if let id = Self.field("node", in: line) { return id }
        }
        return nil
    }

    /// The ids of the nodes this one has a link with now, from its `peer link up` /
    /// `peer link down` log lines, in order.
    var linkedPeers: Set<String> {
        var up: Set<String> = []
        for line in stderr.split(separator: "\n") {
            guard let id = Self.field("peer", in: line) else { continue }
            if line.contains("peer link up") { up.insert(id) }
            if line.contains("peer link down") { up.remove(id) }
        }
        return up
    }

    /// How many log lines contain `text`.
    func logCount(_ text: String) -> Int {
        stderr.split(separator: "\n").filter { $0.contains(text) }.count
    }

    /// `key=<16 hex>` in a swift-log line.
    static func field(_ key: String, in line: Substring) -> String? {
        var rest = line[...]
        while let r = rest.range(of: "\(key)=") {
            let valueStart = r.upperBound
            // the key must start a word: `peer=`, not `xpeer=`
            let isWordStart = r.lowerBound == line.startIndex || line[line.index(before: r.lowerBound)] == " "
            let value = line[valueStart...].prefix { $0.isHexDigit }
            if isWordStart && value.count == 16 { return String(value) }
            rest = line[valueStart...]
        }
        return nil
    }

    func send(signal: Int32) { child.send(signal: signal) }

    /// SIGKILL to the node process itself, then reap it.
    func kill9() { child.killAndReap() }

    /// Waits for the process to end by itself. The exit code, or nil if it died of a signal
    /// or is still running after `timeout` (then it is killed).
    func waitForExit(timeout: Duration) -> (code: Int32?, status: String) {
        if !child.waitForExit(timeout: timeout) {
            child.killAndReap()
            return (nil, "did not exit within \(timeout) (killed)")
        }
        return (child.exitCode, child.statusText)
    }

    /// SIGTERM, then the exit status within `timeout` (killed if it overstays).
    func terminate(timeout: Duration = .seconds(5)) -> (code: Int32?, status: String) {
        send(signal: SIGTERM)
        return waitForExit(timeout: timeout)
    }
}

/// Nodes a test started: stopped at the end, each given SIGTERM and required to exit 0
/// (docs/operations.md, "Taking a node down"), else killed. Failure messages carry every node's log tail.
final class ClusterNodes {
    private(set) var all: [ClusterNode] = []

    @discardableResult
    func start(_ name: String, port: Int = 0, _ flags: [String] = []) throws -> ClusterNode {
        let n = try ClusterNode(name, port: port, flags)
        all.append(n)
        return n
    }

    func logs(_ lines: Int = 25) -> String {
        all.map { "--- \($0.name) (port \($0.port), id \($0.nodeID ?? "?")) stderr ---\n\($0.stderrTail(lines))" }
            .joined(separator: "\n")
    }

    /// SIGTERM to every node still running, then each must exit 0 within 5 s.
    func stopAll(expectCleanExit: Bool = true) {
        let running = all.filter { $0.isRunning }
        for n in running { n.send(signal: SIGTERM) }
        for n in running {
            let (code, status) = n.waitForExit(timeout: .seconds(5))
            if expectCleanExit && code != 0 {
                Issue.record("node \(n.name) \(status) after SIGTERM (expected exit 0)\n--- \(n.name) stderr ---\n\(n.stderrTail())")
            }
        }
        all.removeAll()
    }
}

/// Runs `body` with a fresh set of nodes; every node is stopped afterwards, even on failure,
/// and a thrown failure carries every node's log tail.
func withCluster<T>(_ body: (ClusterNodes) throws -> T) throws -> T {
    let nodes = ClusterNodes()
    do {
        let result = try body(nodes)
        nodes.stopAll()
        return result
    } catch {
        let logs = nodes.logs()
        nodes.stopAll(expectCleanExit: false)
        throw E2EError("\(error)\n\(logs)")
    }
}

// MARK: Convergence

/// Waits until every node has a link to every other (the full mesh the nodes' gossip builds,
/// docs/cluster-protocol.md §3): from then on the topology is stable and nothing in flight may be
/// lost to a changing path.
func awaitMesh(_ nodes: [ClusterNode], timeout: Duration = .seconds(10)) throws {
    try retry(for: timeout, every: .milliseconds(20), "the nodes forming a full mesh") { () -> Void? in
        let ids = nodes.map { $0.nodeID }
        guard ids.allSatisfy({ $0 != nil }) else { throw E2EError("a node logged no `node started ... node=<id>` line") }
        let all = Set(ids.compactMap { $0 })
        let missing = nodes.compactMap { n -> String? in
            let want = all.subtracting([n.nodeID!])
            let have = n.linkedPeers
            return have == want ? nil : "\(n.name) links to \(have.sorted()) instead of \(want.sorted())"
        }
        guard missing.isEmpty else { throw E2EError(missing.joined(separator: "; ")) }
        return ()
    }
}

/// Waits until the nodes agree on names: a probe user logged in on `nodes[0]` is refused on
/// every other node. The probe logs out afterwards.
func awaitSharedNames(_ nodes: [ClusterNode], timeout: Duration = .seconds(10)) throws {
    let probe = "probe\(UInt32.random(in: 0...UInt32.max))"
    let holder = try login(probe, "probes", on: nodes[0])
    guard holder.reply == "200" else { throw E2EError("probe \(probe) on \(nodes[0].name) got \(holder.reply), expected 200") }
    defer { holder.client.close() }
    for n in nodes.dropFirst() {
        _ = try retry(for: timeout, every: .milliseconds(50), "\(probe), logged in on \(nodes[0].name), to get 403 on \(n.name)") {
            let attempt = try login(probe, "probes", on: n)
            attempt.client.close()
            return attempt.reply == "403" ? true : nil
        }
    }
}

// MARK: Logins

/// Connects and sends a line handshake; returns the node's first reply line (`200`, `403`,
/// `400`) and the client (closed by the node unless 200).
func login(_ user: String, _ room: String, on node: ClusterNode, timeout: Duration = .seconds(5)) throws -> (reply: String, client: LineClient) {
    let c = try LineClient.connect(port: node.port, label: "\(user)@\(node.name)")
    try c.send("\(user)_\(room)\n")
    let reply = try c.readLine(timeout: timeout)
    return (reply, c)
}

/// Logs in and requires 200.
func join(_ user: String, _ room: String, on node: ClusterNode) throws -> LineClient {
    let (reply, c) = try login(user, room, on: node)
    guard reply == "200" else { throw E2EError("\(user)_\(room) on \(node.name): expected 200, got \"\(reply)\"") }
    return c
}

/// Logs in and requires 403 (then the node closes the connection).
func expectRefused(_ user: String, _ room: String, on node: ClusterNode, _ why: String) throws {
    let (reply, c) = try login(user, room, on: node)
    defer { c.close() }
    guard reply == "403" else { throw E2EError("\(user)_\(room) on \(node.name) (\(why)): expected 403, got \"\(reply)\"") }
}

/// Tries to log `user` in on `node` until it gets 200 or `timeout` passes. Returns the client
/// and how long it took from the first attempt.
func loginWhenFree(_ user: String, _ room: String, on node: ClusterNode, within timeout: Duration,
                   _ what: String) throws -> (client: LineClient, after: Duration) {
    let start = ContinuousClock.now
    var replies: [String: Int] = [:]
    let client = try retry(for: timeout, every: .milliseconds(20), "\(what): \(user) on \(node.name) logged in") { () -> LineClient? in
        let (reply, c) = try login(user, room, on: node)
        if reply == "200" { return c }
        c.close()
        replies[reply, default: 0] += 1
        throw E2EError("refused (replies: \(replies))")
    }
    return (client, ContinuousClock.now - start)
}

// MARK: Ports and files

/// `count` distinct free loopback ports: each bound to port 0 and closed once all are picked.
/// Another process may take one before the node binds it; callers retry on a start failure.
func pickFreePorts(_ count: Int) throws -> [Int] {
    var fds: [Int32] = []
    defer { fds.forEach { close($0) } }
    var ports: [Int] = []
    for _ in 0..<count {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw E2EError("socket() failed: \(errnoText())") }
        fds.append(fd)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw E2EError("bind 127.0.0.1:0 failed: \(errnoText())") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        ports.append(Int(UInt16(bigEndian: addr.sin_port)))
    }
    return ports
}

/// A temp file holding `content`, removed when the object goes.
final class ClusterTempFile {
    let path: String
    init(_ content: String, name: String = "secret") throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("tcp_chat-cluster-\(name)-\(UUID().uuidString)").path
        guard FileManager.default.createFile(atPath: path, contents: Data(content.utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw E2EError("cannot write \(path)")
        }
    }
    deinit { unlink(path) }
}

/// The next line must be `expected`; throws with what came instead.
func expectNextLine(_ client: LineClient, _ expected: String, timeout: Duration = .seconds(5)) throws {
    let got = try client.readLine(timeout: timeout)
    guard got == expected else { throw E2EError("\(client.label): expected \"\(expected)\", got \"\(got)\"") }
}

/// Asserts nothing arrived for `client` (what arrived so far, without waiting).
func expectNoLines(_ client: LineClient, _ why: String) throws {
    let got = try client.availableLines()
    guard got.isEmpty else { throw E2EError("\(client.label) should have received nothing (\(why)), got \(got)") }
}

/// `user` (on `sender`) says `text`: its own echo comes back first, then each of `receivers`
/// gets the line next.
func expectSaid(_ user: String, on sender: LineClient, _ text: String, reaches receivers: [LineClient]) throws {
    try sender.send(text + "\n")
    try expectNextLine(sender, "\(user) - \(text)")
    for r in receivers { try expectNextLine(r, "\(user) - \(text)") }
}
