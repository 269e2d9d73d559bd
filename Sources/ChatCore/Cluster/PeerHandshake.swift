import Crypto

/// Opening a peer link (docs/cluster-protocol.md §3), protocol version 2: the dialer sends
/// HELLO, the acceptor answers HELLO. In secret mode the **dialer proves first**: it sends
/// AUTH, an HMAC-SHA256 that binds its role, both nonces, both ids and the transport's
/// channel binding; the acceptor checks it and only then sends its own proof, made with the
/// other role. So an acceptor never signs anything for a stranger (no oracle to relay), a
/// proof made for one role is useless in the other (no reflection), and both fresh nonces
/// make every proof good for one connection only (no replay). Pure: the runtime feeds it
/// messages and sends what it returns.
public struct PeerHandshake {
    public let me: NodeID
    public let advertise: String
    private let secret: SymmetricKey?
    private let nonce: String
    /// Bytes that identify the transport session (a TLS exporter value), empty for plain TCP.
    private let binding: [UInt8]
    public private(set) var peer: (node: NodeID, advertise: String)?
    private var theirNonce: String?
    private var role: Role = .acceptor
    private var helloSent = false
    private var sentProof = false
    private var done = false

    public enum Role: String, Sendable { case dialer, acceptor }

    public enum Outcome: Equatable {
        /// Not done yet: send `send` and wait for more.
        case waiting
        /// The link is open to `node`, dialable at `advertise`.
        case established(node: NodeID, advertise: String)
        /// Refuse the link: send the ERROR in `send`, log `reason`, close.
        case failed(reason: String)
    }

    /// `secret` is the cluster secret's bytes, or nil for an open cluster. `binding`
    /// identifies the transport session both ends see (empty for plain TCP).
    public init(me: NodeID, advertise: String, secret: [UInt8]?, nonce: String, binding: [UInt8] = []) {
        self.me = me
        self.advertise = advertise
        self.secret = secret.map { SymmetricKey(data: $0) }
        self.nonce = nonce
        self.binding = binding
    }

    /// The dialing side speaks first.
    public mutating func start() -> [PeerMessage] {
        role = .dialer
        helloSent = true
        return [hello]
    }

    private var hello: PeerMessage { .hello(node: me, advertise: advertise, nonce: nonce, secret: secret != nil) }

    public mutating func receive(_ msg: PeerMessage) -> (send: [PeerMessage], outcome: Outcome) {
        guard !done else { return fail("handshake message on an open link") }
        switch msg {
        case let .hello(node, addr, theirs, theyHaveSecret):
            guard peer == nil else { return fail("a second HELLO") }
            if node == me { return fail("connected to itself") }
            if theyHaveSecret && secret == nil { return fail("peer asks for a cluster secret; this node has none") }
            if !theyHaveSecret && secret != nil { return fail("peer has no cluster secret; this cluster requires one") }
            if theirs == nonce { return fail("peer echoed this node's nonce") }
            peer = (node, addr)
            theirNonce = theirs
            var out: [PeerMessage] = []
            if !helloSent { helloSent = true; out.append(hello) }
            guard let key = secret else {
                done = true
                return (out, .established(node: node, advertise: addr))
            }
            if role == .dialer {
                sentProof = true
                out.append(.auth(proof: proof(key: key, by: .dialer)))
            }
            return (out, .waiting)
        case let .auth(theirProof):
            guard let key = secret, let peer, theirNonce != nil else { return fail("unexpected AUTH") }
            // The acceptor checks first and proves after; the dialer has proved already.
            let theirRole: Role = role == .dialer ? .acceptor : .dialer
            guard role == .acceptor || sentProof else { return fail("unexpected AUTH") }
            let expected = proof(key: key, by: theirRole)
            guard constantTimeEqual(Array(theirProof.utf8), Array(expected.utf8)) else {
                return fail("wrong cluster secret proof")
            }
            done = true
            var out: [PeerMessage] = []
            if role == .acceptor {
                sentProof = true
                out.append(.auth(proof: proof(key: key, by: .acceptor)))
            }
            return (out, .established(node: peer.node, advertise: peer.advertise))
        case let .error(reason):
            return ([], .failed(reason: "peer refused the link: \(reason)"))
        default:
            return fail("message before the link was open")
        }
    }

    private func fail(_ reason: String) -> (send: [PeerMessage], outcome: Outcome) {
        ([.error(reason: reason)], .failed(reason: reason))
    }

    /// This connection's proof for `by`: the dialer's and acceptor's nonces and ids in that
    /// order, whichever side computes it.
    private func proof(key: SymmetricKey, by: Role) -> String {
        guard let peer, let theirNonce else { return "" }
        let dialerNonce = role == .dialer ? nonce : theirNonce
        let acceptorNonce = role == .dialer ? theirNonce : nonce
        let dialer = role == .dialer ? me : peer.node
        let acceptor = role == .dialer ? peer.node : me
        return PeerHandshake.proof(key: key, role: by, dialerNonce: dialerNonce, acceptorNonce: acceptorNonce,
                                   dialer: dialer, acceptor: acceptor, binding: binding)
    }

    /// HMAC-SHA256(secret, "tcp_chat-peer-v2|<role>|<dialer nonce>|<acceptor nonce>|<dialer id>|<acceptor id>|<hex binding>")
    /// in lowercase hex (docs/cluster-protocol.md §3).
    public static func proof(key: SymmetricKey, role: Role, dialerNonce: String, acceptorNonce: String,
                             dialer: NodeID, acceptor: NodeID, binding: [UInt8]) -> String {
        let text = "tcp_chat-peer-v2|\(role.rawValue)|\(dialerNonce)|\(acceptorNonce)|\(dialer)|\(acceptor)|\(Hex.encode(binding))"
        return Hex.encode(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key))
    }
}

/// Compares two byte strings in time that depends only on their lengths: a proof is never
/// compared with `==`, which stops at the first differing byte.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for i in a.indices { diff |= a[i] ^ b[i] }
    return diff == 0
}

/// Lowercase hexadecimal, the one encoder every proof, nonce and id uses.
public enum Hex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
