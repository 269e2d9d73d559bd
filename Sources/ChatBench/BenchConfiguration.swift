import ChatCore

/// Everything `tcp_chat bench` is asked to do. Defaults are the C harness's `fanout`
/// scenario (100 clients, one room, 10 senders flat-out with 32 messages in flight each,
/// 64-byte messages), with a 10 s measurement after 2 s of warmup.
public struct BenchConfiguration: Sendable, Equatable {
    /// Nodes the clients connect to, round-robin by member index so every room spans them.
    public var targets: [String] = ["localhost:8888"]
    /// When set, the senders connect here instead (a cluster: senders on one node, receivers on others).
    public var sendTargets: [String] = []
    public var clients = 100
    public var rooms = 1
    /// Senders per room: the first members of each room (capped at the room's size).
    public var senders = 10
    /// Bytes of each message's text (the payload), at least `BenchPayload.minSize`.
    public var size = 64
    /// Messages per second per sender; 0 = flat-out (closed loop, `window` in flight).
    public var rate: Double = 0
    /// Flat-out: messages in flight per sender (deliveries owed, divided by the room's size).
    /// 0 = write as fast as TCP accepts.
    public var window = 32
    public var duration: Double = 10
    public var warmup: Double = 2
    /// After the measurement, how long to wait for messages still in flight.
    public var drain: Double = 2
    public var connectTimeout: Double = 10
    /// Connections being opened or logging in at once.
    public var connectParallel = 100
    public var namePrefix = "bench"
    public var roomPrefix = "benchroom"
    /// `--tls`: every client speaks TLS, verifying the node's certificate (docs/tls.md).
    public var tls = false
    /// `--tls-ca FILE`: the CA the nodes' certificates chain to (default: the system store).
    public var tlsCA: String?
    /// Every client is a WebSocket session (`GET /ws`, frames) instead of a TCP line session.
    public var webSocket = false

    public init() {}

    /// Clients per room, the room of the largest.
    public var roomSize: Int { (clients + rooms - 1) / max(rooms, 1) }
    /// Senders per room as they will run.
    public var sendersPerRoom: Int { min(senders, roomSize) }

    /// The problems with these settings, in words; empty when they can run.
    public func problems() -> [String] {
        var out: [String] = []
        if targets.isEmpty { out.append("give at least one --target") }
        for t in targets + sendTargets where HostPort.parse(t) == nil {
            out.append("'\(t)' is not HOST:PORT (IPv6 as [ADDR]:PORT)")
        }
        if clients < 1 || clients > 100_000 { out.append("--clients must be 1…100000") }
        if rooms < 1 || rooms > clients { out.append("--rooms must be 1…--clients") }
        if senders < 1 { out.append("--senders must be at least 1") }
        if size < BenchPayload.minSize || size > Limits().maxMessageBytes {
            out.append("--size must be \(BenchPayload.minSize)…\(Limits().maxMessageBytes) bytes")
        }
        if !(rate >= 0 && rate <= 1_000_000) { out.append("--rate must be 0 (flat-out)…1000000 messages/s per sender") }
        if window < 0 || window > 100_000 { out.append("--window must be 0…100000") }
        if !(duration > 0 && duration <= 3600) { out.append("--duration must be more than 0 and at most 3600 s") }
        if !(warmup >= 0 && warmup <= 600) { out.append("--warmup must be 0…600 s") }
        if !(drain >= 0 && drain <= 600) { out.append("--drain must be 0…600 s") }
        if !(connectTimeout > 0 && connectTimeout <= 600) { out.append("--connect-timeout must be more than 0 and at most 600 s") }
        if connectParallel < 1 { out.append("--conn-par must be at least 1") }
        let maxID = clients - 1
        if namePrefix.isEmpty || !namePrefix.utf8.allSatisfy(ChatName.isNameByte)
            || namePrefix.utf8.count + String(maxID).utf8.count > Limits.maxUsernameLength {
            out.append("--name-prefix must be A-Z a-z 0-9 / and leave room for the client number within \(Limits.maxUsernameLength) characters")
        }
        if roomPrefix.isEmpty || !roomPrefix.utf8.allSatisfy(ChatName.isNameByte)
            || roomPrefix.utf8.count + String(max(rooms - 1, 0)).utf8.count > Limits.maxChatIDLength {
            out.append("--room-prefix must be A-Z a-z 0-9 / and leave room for the room number within \(Limits.maxChatIDLength) characters")
        }
        return out
    }

    /// The hard deadline of a run: the phases, the connect timeout and 10 s.
    public var hardDeadlineSeconds: Double { warmup + duration + drain + connectTimeout + 10 }
}

/// `HOST:PORT`, an IPv6 host in brackets.
public struct HostPort: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public static func parse(_ s: String) -> HostPort? {
        guard let colon = s.lastIndex(of: ":"), colon > s.startIndex,
              let port = Int(s[s.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(s[..<colon])
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { return nil }
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            return nil
        }
        return HostPort(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
