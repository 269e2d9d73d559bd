/// The inter-node line protocol, version 3 (docs/cluster-protocol.md). One message per
/// `\n`-terminated line; fields separated by one space; a chat message's text is the rest
/// of the line. Every flooded message carries its origin node and that node's sequence number.
public enum PeerMessage: Equatable, Sendable {
    /// Opens a link: `TCPCHAT-PEER/2 HELLO <node> <advertise> <nonce> <open|secret>`.
    case hello(node: NodeID, advertise: String, nonce: String, secret: Bool)
    /// Proves the shared secret: `AUTH <hex HMAC-SHA256>`.
    case auth(proof: String)
    /// Refuses or ends a link with a reason: `ERROR <text>`.
    case error(reason: String)
    /// Flooded: `HB <origin> <seq> <advertise> <version> <neighbors,...|-|=>` — liveness and
    /// link state. `version` numbers the origin's neighbor set; `neighbors` is nil for `=`:
    /// the set is the one the origin last listed with this version.
    case heartbeat(Flood, advertise: String, version: UInt64, neighbors: [NodeID]?)
    /// Flooded: `STATE <origin> <seq> <rooms,...|-> <name:ts,...|->` — the origin's whole state.
    case state(Flood, rooms: [String], claims: [NameClaim])
    /// Flooded: `ROOM <origin> <seq> <+|-> <room>` — the origin has (+) or no longer has (-) members in room.
    case room(Flood, joined: Bool, room: String)
    /// Flooded: `CLAIM <origin> <seq> <name> <ts>` — the origin asks to grant a username.
    case claim(Flood, NameClaim)
    /// Flooded, or direct to a claimant that is a neighbor (seq 0):
    /// `REPLY <origin> <seq> <claimant> <name> <ts> <yes|no>` — an answer to a claim.
    case reply(Flood, claimant: NodeID, NameClaim, granted: Bool)
    /// Flooded: `RELEASE <origin> <seq> <name> <ts>` — the origin's claim on a name ended.
    case release(Flood, NameClaim)
    /// Flooded: `BYE <origin> <seq>` — the origin is shutting down cleanly.
    case bye(Flood)
    /// Flooded: `LOAD <origin> <seq> <sessions> <room:members,...|->` — the origin's member counts, for status.
    case load(Flood, sessions: Int, rooms: [RoomCount])
    /// Routed by room: `MSG <origin> <seq> <room> <user> <text>` — seq counts per (origin, room).
    case chat(Flood, room: String, user: String, text: String)

    public static let version = 3
    public static let helloPrefix = "TCPCHAT-PEER/\(version)"
}

/// The header of every flooded message: who first sent it and its place in that node's stream.
public struct Flood: Equatable, Sendable {
    public var origin: NodeID
    public var seq: UInt64
    public init(origin: NodeID, seq: UInt64) { self.origin = origin; self.seq = seq }
}

/// A room and how many members a node has in it.
public struct RoomCount: Equatable, Hashable, Sendable {
    public var room: String
    public var members: Int
    public init(room: String, members: Int) { self.room = room; self.members = members }
}

/// A claim on a username: the name (lowercased key) and the claim's HLC timestamp.
public struct NameClaim: Equatable, Hashable, Sendable {
    public var name: String
    public var ts: UInt64
    public init(name: String, ts: UInt64) { self.name = name; self.ts = ts }
}

public enum PeerCodecError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    public var description: String {
        switch self { case .malformed(let why): return "malformed peer message: \(why)" }
    }
}

extension PeerMessage {
    /// The line for this message, without its `\n`.
    public var encoded: String {
        switch self {
        case let .hello(node, advertise, nonce, secret):
            return "\(PeerMessage.helloPrefix) HELLO \(node) \(advertise) \(nonce) \(secret ? "secret" : "open")"
        case let .auth(proof): return "AUTH \(proof)"
        case let .error(reason): return "ERROR \(reason)"
        case let .heartbeat(f, advertise, version, neighbors):
            return "HB \(f.origin) \(f.seq) \(advertise) \(version) \(neighbors.map { PeerMessage.list($0.map(\.text)) } ?? "=")"
        case let .state(f, rooms, claims):
            return "STATE \(f.origin) \(f.seq) \(PeerMessage.list(rooms)) \(PeerMessage.list(claims.map { "\($0.name):\($0.ts)" }))"
        case let .room(f, joined, room): return "ROOM \(f.origin) \(f.seq) \(joined ? "+" : "-") \(room)"
        case let .claim(f, c): return "CLAIM \(f.origin) \(f.seq) \(c.name) \(c.ts)"
        case let .reply(f, claimant, c, granted):
            return "REPLY \(f.origin) \(f.seq) \(claimant) \(c.name) \(c.ts) \(granted ? "yes" : "no")"
        case let .release(f, c): return "RELEASE \(f.origin) \(f.seq) \(c.name) \(c.ts)"
        case let .bye(f): return "BYE \(f.origin) \(f.seq)"
        case let .load(f, sessions, rooms):
            return "LOAD \(f.origin) \(f.seq) \(sessions) \(PeerMessage.list(rooms.map { "\($0.room):\($0.members)" }))"
        case let .chat(f, room, user, text): return "MSG \(f.origin) \(f.seq) \(room) \(user) \(text)"
        }
    }

    static func list(_ items: [String]) -> String { items.isEmpty ? "-" : items.joined(separator: ",") }

    /// Parses one line (without `\n`). Throws on anything malformed: the link is then dropped.
    /// Splits on the space byte, not on Characters: a text may begin with a combining mark,
    /// which would otherwise fuse with the space before it into one grapheme.
    public static func decode<S: StringProtocol>(_ line: S) throws -> PeerMessage {
        // Through the contiguous storage (a memcpy): `Array(line.utf8)` copies byte by byte.
        let bytes = line.utf8.withContiguousStorageIfAvailable { Array($0) } ?? Array(line.utf8)
        let verbEnd = bytes.firstIndex(of: 0x20) ?? bytes.count
        let verb = String(decoding: bytes[..<verbEnd], as: UTF8.self)
        guard let spec = PeerMessage.verbs[verb] else {
            if verb.hasPrefix("TCPCHAT-PEER/") {
                throw PeerCodecError.malformed("peer protocol \(LogSafe.text(verb, max: 32)) not supported; this node speaks \(helloPrefix)")
            }
            throw PeerCodecError.malformed("unknown verb \(LogSafe.text(verb, max: 32))")
        }
        // MSG's last field is free text (may hold spaces); every other field is one token.
        // Cut in place into an array of the right size (no intermediate slices, no regrowth).
        var fields: [String] = []
        fields.reserveCapacity(spec.fields)
        var start = verbEnd < bytes.count ? verbEnd + 1 : bytes.count
        while fields.count < spec.fields - 1, let space = bytes[start...].firstIndex(of: 0x20) {
            fields.append(String(decoding: bytes[start..<space], as: UTF8.self))
            start = space + 1
        }
        fields.append(String(decoding: bytes[start...], as: UTF8.self))
        guard fields.count == spec.fields else { throw PeerCodecError.malformed("\(verb) takes \(spec.fields) fields") }
        return try spec.parse(Fields(fields))
    }

    /// The verb table (ngIRCd's parse.c style): field count and parser of each message.
    static let verbs: [String: (fields: Int, parse: @Sendable (Fields) throws -> PeerMessage)] = [
        helloPrefix: (5, { f in
            guard f[0] == "HELLO" else { throw PeerCodecError.malformed("expected HELLO") }
            guard f[4] == "open" || f[4] == "secret" else { throw PeerCodecError.malformed("auth mode") }
            guard (1...128).contains(f[3].utf8.count), f[3].utf8.allSatisfy(Fields.isAlphanumeric) else {
                throw PeerCodecError.malformed("nonce: 1 to 128 letters and digits")
            }
            return .hello(node: try f.node(1), advertise: try f.address(2), nonce: f[3], secret: f[4] == "secret")
        }),
        "AUTH": (1, { f in .auth(proof: f[0]) }),
        "ERROR": (1, { f in .error(reason: f[0]) }),
        "HB": (5, { f in
            let version = try Fields.number(f[3])
            guard f[4] != "=" else { return .heartbeat(try f.flood(), advertise: try f.address(2), version: version, neighbors: nil) }
            let list = try f.list(4)
            guard list.count <= Limits.maxClusterNodes else { throw PeerCodecError.malformed("HB lists more than \(Limits.maxClusterNodes) neighbors") }
            return .heartbeat(try f.flood(), advertise: try f.address(2), version: version,
                              neighbors: try list.map { try Fields.node($0) })
        }),
        "STATE": (4, { f in
            .state(try f.flood(), rooms: try f.list(2).map { try Fields.name($0, max: Limits.maxChatIDLength) },
                   claims: try f.list(3).map { item in
                       guard let colon = item.lastIndex(of: ":") else { throw PeerCodecError.malformed("claim \(LogSafe.text(item, max: 40))") }
                       return NameClaim(name: try Fields.name(String(item[..<colon]), max: Limits.maxUsernameLength),
                                        ts: try Fields.number(String(item[item.index(after: colon)...])))
                   })
        }),
        "ROOM": (4, { f in
            guard f[2] == "+" || f[2] == "-" else { throw PeerCodecError.malformed("ROOM sign") }
            return .room(try f.flood(), joined: f[2] == "+", room: try Fields.name(f[3], max: Limits.maxChatIDLength))
        }),
        "CLAIM": (4, { f in .claim(try f.flood(), try f.claim(2)) }),
        "REPLY": (6, { f in
            guard f[5] == "yes" || f[5] == "no" else { throw PeerCodecError.malformed("REPLY answer") }
            return .reply(try f.flood(), claimant: try f.node(2), try f.claim(3), granted: f[5] == "yes")
        }),
        "RELEASE": (4, { f in .release(try f.flood(), try f.claim(2)) }),
        "BYE": (2, { f in .bye(try f.flood()) }),
        "LOAD": (4, { f in
            .load(try f.flood(), sessions: try Fields.count(f[2]), rooms: try f.list(3).map { item in
                guard let colon = item.lastIndex(of: ":") else { throw PeerCodecError.malformed("room count \(LogSafe.text(item, max: 40))") }
                return RoomCount(room: try Fields.name(String(item[..<colon]), max: Limits.maxChatIDLength),
                                 members: try Fields.count(String(item[item.index(after: colon)...])))
            })
        }),
        "MSG": (5, { f in
            .chat(try f.flood(), room: try Fields.name(f[2], max: Limits.maxChatIDLength),
                  user: try Fields.name(f[3], max: Limits.maxUsernameLength, keepCase: true), text: f[4])
        }),
    ]
}

/// Field accessors that throw `PeerCodecError` on anything out of shape.
struct Fields: Sendable {
    let items: [String]
    init(_ items: [String]) { self.items = items }
    subscript(i: Int) -> String { items[i] }

    func flood() throws -> Flood { Flood(origin: try node(0), seq: try Fields.number(items[1])) }
    func node(_ i: Int) throws -> NodeID { try Fields.node(items[i]) }
    func claim(_ i: Int) throws -> NameClaim {
        NameClaim(name: try Fields.name(items[i], max: Limits.maxUsernameLength), ts: try Fields.number(items[i + 1]))
    }
    func list(_ i: Int) throws -> [String] {
        if items[i] == "-" { return [] }
        let parts = items[i].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard !parts.contains(where: \.isEmpty) else { throw PeerCodecError.malformed("empty list item") }
        return parts
    }
    /// An advertise address: a `HostPort` (no port 0, nothing a terminal would interpret).
    func address(_ i: Int) throws -> String {
        let a = items[i]
        guard HostPort(a) != nil else { throw PeerCodecError.malformed("address \(LogSafe.text(a, max: 40))") }
        return a
    }
    /// A count of sessions or members: at most `Limits.maxWireCount`, so sums over every
    /// node of a cluster cannot overflow.
    static func count(_ s: String) throws -> Int {
        let n = try number(s)
        guard n <= UInt64(Limits.maxWireCount) else { throw PeerCodecError.malformed("count \(LogSafe.text(s, max: 40)) out of range") }
        return Int(n)
    }
    static func isAlphanumeric(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }
    static func node(_ s: String) throws -> NodeID {
        guard let id = NodeID(s) else { throw PeerCodecError.malformed("node id \(LogSafe.text(s, max: 40))") }
        return id
    }
    static func number(_ s: String) throws -> UInt64 {
        guard s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = UInt64(s), n <= UInt64(Int64.max) else { throw PeerCodecError.malformed("number \(LogSafe.text(s, max: 40))") }
        return n
    }
    /// `Fields.number` on bytes: digits only, at most `Int64.max`.
    static func number(bytes d: UnsafeRawBufferPointer) throws -> UInt64 {
        var n: UInt64 = 0
        guard !d.isEmpty else { throw PeerCodecError.malformed("number ") }
        for c in d {
            guard c >= 0x30 && c <= 0x39 else { throw PeerCodecError.malformed("number \(LogSafe.text(String(decoding: d, as: UTF8.self), max: 40))") }
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(c - 0x30))
            guard !o1, !o2, s <= UInt64(Int64.max) else { throw PeerCodecError.malformed("number \(LogSafe.text(String(decoding: d, as: UTF8.self), max: 40))") }
            n = s
        }
        return n
    }

    /// A username or chat id. Keys travel lowercased; a chat message's user keeps its case for
    /// display. The rules of `ChatName`, checked on the bytes without building one.
    static func name(_ s: String, max: Int, keepCase: Bool = false) throws -> String {
        let u = s.utf8
        guard !u.isEmpty, u.count <= max,
              u.allSatisfy({ ChatName.isNameByte($0) && (keepCase || !($0 >= 0x41 && $0 <= 0x5A)) }) else {
            throw PeerCodecError.malformed("name \(LogSafe.text(s, max: 70))")
        }
        return s
    }
}

/// A MSG line's fields read straight from its bytes, for the hot path of a cluster
/// (`Cluster.receive(bytes:)`): the text stays a view of the line. The checks are the ones
/// `PeerMessage.decode` applies to a MSG (`Fields`), so both paths accept the same lines.
struct PeerChat {
    let flood: Flood
    let room: String
    let user: String
    let text: UnsafeRawBufferPointer

    /// Nil when the line is not a MSG; throws when it is a malformed one.
    static func parse(_ b: UnsafeRawBufferPointer) throws -> PeerChat? {
        guard b.count >= 4, b[0] == 0x4D, b[1] == 0x53, b[2] == 0x47, b[3] == 0x20 else { return nil }
        var at = 4
        func field() throws -> UnsafeRawBufferPointer {
            guard let space = b[at...].firstIndex(of: 0x20) else { throw PeerCodecError.malformed("MSG takes 5 fields") }
            defer { at = space + 1 }
            return UnsafeRawBufferPointer(rebasing: b[at..<space])
        }
        guard let node = NodeID(bytes: try field()) else { throw PeerCodecError.malformed("node id") }
        let seq = try Fields.number(bytes: try field())
        let room = try Fields.name(String(decoding: try field(), as: UTF8.self), max: Limits.maxChatIDLength)
        let user = try Fields.name(String(decoding: try field(), as: UTF8.self), max: Limits.maxUsernameLength, keepCase: true)
        return PeerChat(flood: Flood(origin: node, seq: seq), room: room, user: user,
                        text: UnsafeRawBufferPointer(rebasing: b[at...]))
    }
}

extension PeerMessage {
    var flood: Flood? {
        switch self {
        case .hello, .auth, .error: return nil
        case .heartbeat(let f, _, _, _), .state(let f, _, _), .room(let f, _, _), .claim(let f, _),
             .reply(let f, _, _, _), .release(let f, _), .bye(let f), .chat(let f, _, _, _), .load(let f, _, _):
            return f
        }
    }

    var chatRoom: String? {
        if case .chat(_, let room, _, _) = self { return room }
        return nil
    }
}

/// An HB line read straight from its bytes (`Cluster.receive(bytes:)`): in a quiet cluster
/// it is nearly all the traffic, one per neighbor per second, and a forming one lists
/// neighbors by the hundred. Accepts and refuses exactly the lines `PeerMessage.decode`
/// does (the `peer_codec` fuzz target checks it); `advertise` hands back the address a node
/// is known by, so an unchanged one is neither validated nor copied again.
enum PeerHeartbeat {
    /// Nil when the line is not an HB; throws when it is a malformed one.
    static func parse(_ b: UnsafeRawBufferPointer, advertise known: (NodeID) -> String?) throws -> PeerMessage? {
        guard b.count >= 3, b[0] == 0x48, b[1] == 0x42, b[2] == 0x20 else { return nil }
        var at = 3
        // Fields 1-4 end at a space; the fifth is the rest of the line.
        func field() throws -> UnsafeRawBufferPointer {
            guard let space = b[at...].firstIndex(of: 0x20) else { throw PeerCodecError.malformed("HB takes 5 fields") }
            defer { at = space + 1 }
            return UnsafeRawBufferPointer(rebasing: b[at..<space])
        }
        let originBytes = try field(), seqBytes = try field(), addrBytes = try field(), versionBytes = try field()
        guard let origin = NodeID(bytes: originBytes) else {
            throw PeerCodecError.malformed("node id \(LogSafe.text(String(decoding: originBytes, as: UTF8.self), max: 40))")
        }
        let seq = try Fields.number(bytes: seqBytes), version = try Fields.number(bytes: versionBytes)
        let advertise: String
        if let k = known(origin), k.utf8.elementsEqual(addrBytes) {
            advertise = k
        } else {
            let a = String(decoding: addrBytes, as: UTF8.self)
            guard HostPort(a) != nil else { throw PeerCodecError.malformed("address \(LogSafe.text(a, max: 40))") }
            advertise = a
        }
        let rest = UnsafeRawBufferPointer(rebasing: b[at...])
        let flood = Flood(origin: origin, seq: seq)
        if rest.count == 1 && rest[0] == 0x3D { return .heartbeat(flood, advertise: advertise, version: version, neighbors: nil) }
        if rest.count == 1 && rest[0] == 0x2D { return .heartbeat(flood, advertise: advertise, version: version, neighbors: []) }
        var list: [NodeID] = []
        var start = 0
        while true {
            let end = rest[start...].firstIndex(of: 0x2C) ?? rest.count
            let item = UnsafeRawBufferPointer(rebasing: rest[start..<end])
            guard !item.isEmpty else { throw PeerCodecError.malformed("empty list item") }
            guard let id = NodeID(bytes: item) else {
                throw PeerCodecError.malformed("node id \(LogSafe.text(String(decoding: item, as: UTF8.self), max: 40))")
            }
            list.append(id)
            guard end < rest.count else { break }
            start = end + 1
        }
        guard list.count <= Limits.maxClusterNodes else { throw PeerCodecError.malformed("HB lists more than \(Limits.maxClusterNodes) neighbors") }
        return .heartbeat(flood, advertise: advertise, version: version, neighbors: list)
    }
}

/// The `<origin> <seq>` of a flooded control line (not MSG), read from its bytes without
/// decoding the rest: a copy that came by another path is dropped on this alone
/// (`Cluster.receive(bytes:)`, docs/cluster-protocol.md §4). Nil when the line does not
/// start like a control message; the full decode then judges it.
struct PeerHeader {
    let flood: Flood

    static func parse(_ b: UnsafeRawBufferPointer) -> PeerHeader? {
        guard let verbEnd = b.firstIndex(of: 0x20), verbEnd >= 2, verbEnd <= 7 else { return nil }
        // Every control verb is 2 to 7 capital letters; the handshake's are not flooded.
        guard b[..<verbEnd].allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else { return nil }
        let idStart = verbEnd + 1
        guard b.count > idStart + 17, b[idStart + 16] == 0x20,
              let origin = NodeID(bytes: UnsafeRawBufferPointer(rebasing: b[idStart..<idStart + 16])) else { return nil }
        var seq: UInt64 = 0
        var at = idStart + 17
        while at < b.count, b[at] != 0x20 {
            let c = b[at]
            guard c >= 0x30 && c <= 0x39, seq < UInt64(Int64.max) / 10 else { return nil }
            seq = seq * 10 + UInt64(c - 0x30)
            at += 1
        }
        guard at > idStart + 17 else { return nil }
        return PeerHeader(flood: Flood(origin: origin, seq: seq))
    }
}

/// Appends the decimal digits of `n`, without a String.
func appendDecimal(_ n: UInt64, to out: inout [UInt8]) {
    var v = n
    var buf: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: room for 20 digits
    withUnsafeMutableBytes(of: &buf) { b in
        var i = b.count
        repeat { i -= 1; b[i] = 0x30 + UInt8(v % 10); v /= 10 } while v > 0
        out.append(contentsOf: b[i...])
    }
}
