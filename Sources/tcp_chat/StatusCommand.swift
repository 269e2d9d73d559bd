import ArgumentParser
import ChatCore
import ChatClient
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

/// `tcp_chat status`: the cluster as one node sees it (docs/operations.md).
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the cluster as a node sees it: nodes, links, rooms, totals.",
        discussion: "Rooms and member counts need the cluster secret when the cluster has one."
    )

    @OptionGroup var node: NodeAddressOptions
    @Option(help: ArgumentHelp("File holding the cluster secret (also TCP_CHAT_CLUSTER_SECRET_FILE).", valueName: "FILE"))
    var clusterSecretFile: String?
    @OptionGroup var tlsOptions: NodeTLSOptions
    @Flag(help: "Print the node's JSON report as it is.")
    var json = false

    func run() throws {
        let file = clusterSecretFile ?? processEnvironment()["TCP_CHAT_CLUSTER_SECRET_FILE"]
        let secret = try file.map { try readSecret($0) }
        switch StatusClient.fetch(host: node.address, port: node.port, secret: secret, tls: tlsOptions.tls, caFile: tlsOptions.tlsCa) {
        case .failure(let f):
            let line = Array("\(LogSafe.text("\(f)", max: 500))\n".utf8)
            _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            throw ExitCode(1)
        case .success(let text):
            // Everything printed came from the network: a node (or whatever answered) must
            // not be able to drive the operator's terminal with escapes (docs/security.md).
            if json { print(LogSafe.text(text, max: .max)); return }
            guard let report = try? JSONDecoder().decode(StatusReport.self, from: Data(text.utf8)) else {
                print(LogSafe.text(text, max: 2000))
                return
            }
            print(StatusReport.terminalSafe(report.rendered), terminator: "")
        }
    }
}

/// The node's JSON report (Node+Status.swift), as far as the human form needs it.
struct StatusReport: Decodable {
    struct NodeInfo: Decodable {
        var id: String
        var listen: String
        var advertise: String
        var uptime_ms: Int
        var secret: Bool
    }
    struct Totals: Decodable {
        var connections, sessions, rooms, cluster_nodes, cluster_sessions, messages_in, deliveries: Int
        /// Absent from nodes older than the web page.
        var web_sessions: Int?
    }
    struct Link: Decodable {
        var peer: String?
        var address: String
        var direction: String
        var state: String
        var last_heard_ms_ago: Int?
        var queue_bytes: Int?
    }
    struct Member: Decodable {
        var id: String
        var advertise: String
        var `self`: Bool
        var sessions: Int
        var last_heard_ms_ago: Int?
    }
    struct Room: Decodable {
        var room: String
        var members: Int
        var per_node: [String: Int]
    }
    var node: NodeInfo
    var totals: Totals
    var links: [Link]
    var nodes: [Member]
    var rooms: [Room]?

    /// Each line of `text` with every control, bidi or separator character escaped.
    static func terminalSafe(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { LogSafe.text($0, max: .max) }.joined(separator: "\n")
    }

    var rendered: String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        var out = "node \(node.id) listening on \(node.listen), advertised as \(node.advertise), up \(node.uptime_ms / 1000) s, "
        out += node.secret ? "secret cluster\n" : "open cluster\n"
        out += "totals: \(totals.cluster_nodes) nodes, \(totals.cluster_sessions) sessions in the cluster; here "
        out += "\(totals.sessions) sessions\(totals.web_sessions.map { " (\($0) from browsers)" } ?? ""), "
        out += "\(totals.rooms) rooms, \(totals.connections) connections, "
        out += "\(totals.messages_in) messages in, \(totals.deliveries) delivered\n"
        out += "\nlinks:\n"
        if links.isEmpty { out += "  (none)\n" }
        for l in links {
            let heard = l.last_heard_ms_ago.map { "heard \($0) ms ago" } ?? ""
            let queue = l.queue_bytes.map { "queue \($0) B" } ?? ""
            out += "  \(pad(l.state, 10)) \(pad(l.direction, 3)) \(pad(l.peer ?? "-", 16)) \(pad(l.address, 22)) \(heard) \(queue)\n"
        }
        out += "\nnodes:\n"
        for n in nodes {
            let heard = n.last_heard_ms_ago.map { ", heard \($0) ms ago" } ?? ""
            out += "  \(n.id) \(n.advertise): \(n.sessions) sessions\(heard)\(n.`self` ? " (this node)" : "")\n"
        }
        if let rooms {
            out += "\nrooms:\n"
            if rooms.isEmpty { out += "  (none)\n" }
            for r in rooms {
                let per = r.per_node.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                out += "  \(r.room): \(r.members) members (\(per.joined(separator: ", ")))\n"
            }
        } else {
            out += "\nrooms: hidden (pass --cluster-secret-file to see them)\n"
        }
        return out
    }
}
