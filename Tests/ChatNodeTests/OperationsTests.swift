/// Operating a cluster from the outside (issue: status, metrics, environment): `tcp_chat
/// status` and the Prometheus endpoint against a real two-node cluster, with values that
/// must move as clients come, chat and go (docs/operations.md).
import ChatCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension ClusterTests {
    @Test func statusShowsNodesLinksAndRoomsAndHidesRoomsWithoutTheSecret() throws {
        let secret = try ClusterTempFile("operations secret\n")
        let flags = ["--cluster-secret-file", secret.path]
        try withCluster { nodes in
            let a = try nodes.start("A", flags)
            let b = try nodes.start("B", flags + ["--peer", a.address])
            try awaitMesh([a, b])
            let alice = try join("alice", "ops", on: a)
            let bob = try join("bob", "ops", on: b)
            let carol = try join("carol", "other", on: b)
            defer { carol.close() }

            // Member counts travel every 2 s: wait (bounded) until A's view has B's members.
            let full = try retry(for: .seconds(10), every: .milliseconds(200), "A's status to show B's members") { () -> [String: Any]? in
                let r = try status(of: a, secretFile: secret.path)
                return roomMembers(r, "ops") == 2 && roomMembers(r, "other") == 1 ? r : nil
            }
            let totals = full["totals"] as? [String: Any] ?? [:]
            #expect(totals["cluster_nodes"] as? Int == 2, "totals: \(totals)")
            #expect(totals["cluster_sessions"] as? Int == 3, "totals: \(totals)")
            #expect(totals["sessions"] as? Int == 1, "totals: \(totals)")
            let links = full["links"] as? [[String: Any]] ?? []
            #expect(links.contains { $0["peer"] as? String == b.nodeID && $0["state"] as? String == "up" }, "links: \(links)")
            let perNode = (full["rooms"] as? [[String: Any]] ?? []).first { $0["room"] as? String == "ops" }?["per_node"] as? [String: Any]
            #expect(perNode?[a.nodeID ?? "?"] as? Int == 1 && perNode?[b.nodeID ?? "?"] as? Int == 1, "ops per node: \(perNode ?? [:])")

            // Without the secret: nodes and links, but no rooms.
            let open = try status(of: a, secretFile: nil)
            #expect(open["rooms"] == nil, "rooms shown without the secret: \(open["rooms"] ?? "")")
            #expect((open["nodes"] as? [[String: Any]])?.count == 2)

            // Values move: bob leaves, A's view follows.
            bob.close()
            _ = try retry(for: .seconds(10), every: .milliseconds(200), "A's status to drop bob") { () -> Bool? in
                roomMembers(try status(of: a, secretFile: secret.path), "ops") == 1 ? true : nil
            }
            // The human form names the rooms too.
            let text = try runTool(["status", "-a", "127.0.0.1", "-p", "\(a.port)", "--cluster-secret-file", secret.path])
            #expect(text.code == 0 && text.out.contains("ops: 1 members") && text.out.contains("links:"), "status printed:\n\(text.out)")
            _ = alice
        }
    }

    @Test func metricsMoveAsClientsComeChatAndGo() throws {
        let ports = try pickFreePorts(1)
        try withCluster { nodes in
            let a = try nodes.start("A", ["--metrics", "127.0.0.1:\(ports[0])", "--heartbeat-ms", "200", "--peer-timeout-ms", "1000"])
            let b = try nodes.start("B", ["--peer", a.address, "--heartbeat-ms", "200", "--peer-timeout-ms", "1000"])
            try awaitMesh([a, b])
            let m0 = try scrape(ports[0])
            #expect(m0["tcp_chat_peer_links"] == 1, "peer_links: \(m0["tcp_chat_peer_links"] ?? -1)")
            #expect(m0["tcp_chat_cluster_nodes"] == 2)
            let base = m0["tcp_chat_messages_in_total"] ?? 0

            let alice = try join("alice", "room", on: a)
            let amy = try join("amy", "room", on: a)
            for i in 0..<3 { try alice.send("hello \(i)\n") }
            for i in 0..<3 { try expectNextLine(amy, "alice - hello \(i)") }
            try alice.send("bad \u{1B}[2J\n")
            _ = try alice.readLines(4)  // three echoes and the notice
            let m1 = try scrape(ports[0])
            #expect(m1["tcp_chat_sessions"] == 2, "sessions: \(m1["tcp_chat_sessions"] ?? -1)")
            #expect(m1["tcp_chat_messages_in_total"] == base + 3)
            #expect((m1["tcp_chat_messages_out_total"] ?? 0) >= 6)
            #expect(m1["tcp_chat_drops_total{reason=\"bad_input\"}"] == 1)
            #expect((m1["tcp_chat_claim_latency_seconds_count"] ?? 0) >= 2, "claims timed: \(m1["tcp_chat_claim_latency_seconds_count"] ?? -1)")

            // A node going away shows.
            b.kill9()
            _ = try retry(for: .seconds(5), every: .milliseconds(100), "A's metrics to show B gone") { () -> Bool? in
                let m = try scrape(ports[0])
                return m["tcp_chat_peer_links"] == 0 && m["tcp_chat_cluster_nodes"] == 1 ? true : nil
            }
            amy.close()
            _ = try retry(for: .seconds(5), every: .milliseconds(50), "sessions to drop to 1") { () -> Bool? in
                try scrape(ports[0])["tcp_chat_sessions"] == 1 ? true : nil
            }
            #expect(try httpGet(ports[0], "/healthz").hasPrefix("HTTP/1.1 200"))
            #expect(try httpGet(ports[0], "/nothing").hasPrefix("HTTP/1.1 404"))
        }
    }

    @Test func everyServerOptionCanComeFromTheEnvironmentAndFlagsWin() throws {
        let ports = try pickFreePorts(2)
        // The environment names the port and a low message limit; the command line overrides the limit.
        var env = ProcessInfo.processInfo.environment
        env["TCP_CHAT_PORT"] = "\(ports[0])"
        env["TCP_CHAT_ADDRESS"] = "127.0.0.1"
        env["TCP_CHAT_MAX_MESSAGE_BYTES"] = "8"
        env["TCP_CHAT_METRICS"] = "127.0.0.1:\(ports[1])"
        let out = try OutputPipe()
        let child = try ChildProcess(executable: try NodeBinary.path(), arguments: ["server", "--max-message-bytes", "16"],
                                     environment: env, stdout: out.childEnd, stderr: 2)
        out.closeWriteEnd()
        defer { child.killAndReap() }
        #expect(out.waitFor("metrics on", timeout: .seconds(10)), "printed: \(out.text)")
        #expect(out.text.contains("listening on 127.0.0.1:\(ports[0])"), "printed: \(out.text)")
        let c = try LineClient.join("envy", "room", port: ports[0])
        try c.send("twelve bytes\n")          // over 8 (env) but within 16 (flag): relayed
        #expect(try c.readLine() == "envy - twelve bytes")
        try c.send("seventeen bytes!!\n")     // over 16: refused
        #expect(try c.readLine().hasPrefix("* message too long (limit 16 bytes)"))
        #expect(try httpGet(ports[1], "/healthz").hasPrefix("HTTP/1.1 200"))
        child.send(signal: SIGTERM)
        #expect(child.waitForExit(timeout: .seconds(5)) && child.exitCode == 0)
    }
}

// MARK: Helpers

/// Runs the tcp_chat binary with `args`; returns its exit code and stdout (bounded: 10 s).
func runTool(_ args: [String]) throws -> (code: Int32?, out: String) {
    let out = try OutputPipe()
    let child = try ChildProcess(executable: try NodeBinary.path(), arguments: args, stdout: out.childEnd, stderr: 2)
    out.closeWriteEnd()
    defer { child.killAndReap() }
    // Read while it runs: output larger than the pipe's buffer would otherwise block it.
    _ = out.waitFor("\u{0}never printed", timeout: .seconds(10))
    guard out.reachedEOF, child.waitForExit(timeout: .seconds(2)) else {
        throw E2EError("`tcp_chat \(args.joined(separator: " "))` did not exit in 10 s")
    }
    out.drain()
    return (child.exitCode, out.text)
}

/// `tcp_chat status --json` against a node, parsed.
func status(of node: ClusterNode, secretFile: String?) throws -> [String: Any] {
    var args = ["status", "-a", "127.0.0.1", "-p", "\(node.port)", "--json"]
    if let secretFile { args += ["--cluster-secret-file", secretFile] }
    let (code, text) = try runTool(args)
    guard code == 0, let obj = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw E2EError("`tcp_chat \(args.joined(separator: " "))` exited \(code.map(String.init) ?? "?") printing \(text)")

    }
    return obj
}

func roomMembers(_ report: [String: Any], _ room: String) -> Int? {
    (report["rooms"] as? [[String: Any]])?.first { $0["room"] as? String == room }?["members"] as? Int
}

/// One HTTP GET over a plain socket; the whole response (the server closes after it).
func httpGet(_ port: Int, _ path: String) throws -> String {
    let c = try LineClient.connect(port: port, label: "http")
    try c.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return String(decoding: try c.expectClosed(timeout: .seconds(5)), as: UTF8.self)
}

/// The Prometheus text as `name{labels}` → value (comments skipped).
func scrape(_ port: Int) throws -> [String: Double] {
    let response = try httpGet(port, "/metrics")
    guard response.hasPrefix("HTTP/1.1 200"), let body = response.range(of: "\r\n\r\n") else {
        throw E2EError("metrics answered: \(response.prefix(200))")
    }
    var out: [String: Double] = [:]
    for line in response[body.upperBound...].split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
        out[String(line[..<space])] = v
    }
    return out
}
