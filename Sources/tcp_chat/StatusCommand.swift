import ArgumentParser
import ChatClient
import Foundation

/// `tcp_chat status`: the cluster as one node sees it (docs/operations.md).
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the cluster as a node sees it: nodes, links, rooms, totals.",
        discussion: "Rooms and member counts need the cluster secret when the cluster has one."
    )

    @Option(name: [.short, .customLong("address"), .customLong("adress")], help: "Node address.")
    var address = "localhost"
    @Option(name: .shortAndLong, help: "Node port.")
    var port = 8888
    @Option(help: ArgumentHelp("File holding the cluster secret (also TCP_CHAT_CLUSTER_SECRET_FILE).", valueName: "FILE"))
    var clusterSecretFile: String?
    @Flag(help: "Print the node's JSON report as it is.")
    var json = false

    func run() throws {
        let file = clusterSecretFile ?? ProcessInfo.processInfo.environment["TCP_CHAT_CLUSTER_SECRET_FILE"]
        let secret = try file.map { try readSecret($0) }
        switch StatusClient.fetch(host: address, port: port, secret: secret) {
        case .failure(let f):
            FileHandle.standardError.write(Data("\(f)\n".utf8))
            throw ExitCode(1)
        case .success(let text):
            if json { print(text); return }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                print(text)
                return
            }
            print(StatusText.render(obj), terminator: "")
        }
    }
}

/// The human form of a status report.
enum StatusText {
    static func render(_ r: [String: Any]) -> String {
        var out = ""
        let node = r["node"] as? [String: Any] ?? [:]
        let totals = r["totals"] as? [String: Any] ?? [:]
        func v(_ d: [String: Any], _ k: String) -> String { d[k].map { "\($0)" } ?? "-" }
        out += "node \(v(node, "id")) listening on \(v(node, "listen")), advertised as \(v(node, "advertise")), up \(Int((node["uptime_ms"] as? Int ?? 0) / 1000)) s, \((node["secret"] as? Bool ?? false) ? "secret cluster" : "open cluster")\n"
        out += "totals: \(v(totals, "cluster_nodes")) nodes, \(v(totals, "cluster_sessions")) sessions in the cluster; here \(v(totals, "sessions")) sessions, \(v(totals, "rooms")) rooms, \(v(totals, "connections")) connections, \(v(totals, "messages_in")) messages in, \(v(totals, "deliveries")) delivered\n"
        out += "\nlinks:\n"
        let links = r["links"] as? [[String: Any]] ?? []
        if links.isEmpty { out += "  (none)\n" }
        for l in links {
            let heard = l["last_heard_ms_ago"].map { "heard \($0) ms ago" } ?? ""
            let queue = l["queue_bytes"].map { "queue \($0) B" } ?? ""
            out += "  \(v(l, "state").padding(toLength: 10, withPad: " ", startingAt: 0)) \(v(l, "direction").padding(toLength: 3, withPad: " ", startingAt: 0)) \(v(l, "peer").padding(toLength: 16, withPad: " ", startingAt: 0)) \(v(l, "address").padding(toLength: 22, withPad: " ", startingAt: 0)) \(heard) \(queue)\n"
        }
        out += "\nnodes:\n"
        for n in r["nodes"] as? [[String: Any]] ?? [] {
            let me = (n["self"] as? Bool ?? false) ? " (this node)" : ""
            let heard = n["last_heard_ms_ago"].map { ", heard \($0) ms ago" } ?? ""
            out += "  \(v(n, "id")) \(v(n, "advertise")): \(v(n, "sessions")) sessions\(heard)\(me)\n"
        }
        if let rooms = r["rooms"] as? [[String: Any]] {
            out += "\nrooms:\n"
            if rooms.isEmpty { out += "  (none)\n" }
            for room in rooms {
                let per = (room["per_node"] as? [String: Any] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                out += "  \(v(room, "room")): \(v(room, "members")) members (\(per.joined(separator: ", ")))\n"
            }
        } else {
            out += "\nrooms: hidden (pass --cluster-secret-file to see them)\n"
        }
        return out
    }
}
