import Crypto

/// Opening a peer link (SPEC.md §4.1, docs/cluster-protocol.md §3): both ends send HELLO;
/// when the cluster has a secret, each then proves it with AUTH, an HMAC-SHA256 over the
/// other end's fresh nonce, so the secret never crosses the wire and a recorded proof
/// cannot be replayed. Pure: the runtime feeds it messages and sends what it returns.
public struct PeerHandshake {
    public let me: NodeID
    public let advertise: String
    private let secret: SymmetricKey?
    private let nonce: String
    public private(set) var peer: (node: NodeID, advertise: String)?
    private var theirNonce: String?
    private var helloSent = false
    private var proven = false

    public enum Outcome: Equatable {
        /// Not done yet: send `send` and wait for more.
        case waiting
        /// The link is open to `node`, dialable at `advertise`.
        case established(node: NodeID, advertise: String)
        /// Refuse the link: send the ERROR in `send`, log `reason`, close.
        case failed(reason: String)
    }

    /// `secret` is the cluster secret's bytes, or nil for an open cluster.
    public init(me: NodeID, advertise: String, secret: [UInt8]?, nonce: String) {
        self.me = me
        self.advertise = advertise
        self.secret = secret.map { SymmetricKey(data: $0) }
        self.nonce = nonce
    }

    /// The dialing side speaks first.
    public mutating func start() -> [PeerMessage] {
        helloSent = true
        return [hello]
    }

    private var hello: PeerMessage { .hello(node: me, advertise: advertise, nonce: nonce, secret: secret != nil) }

    public mutating func receive(_ msg: PeerMessage) -> (send: [PeerMessage], outcome: Outcome) {
        switch msg {
        case let .hello(node, addr, theirs, theyHaveSecret):
            guard peer == nil else { return fail("a second HELLO") }
            if node == me { return fail("connected to itself") }
            if theyHaveSecret && secret == nil { return fail("peer asks for a cluster secret; this node has none") }
            if !theyHaveSecret && secret != nil { return fail("peer has no cluster secret; this cluster requires one") }
            peer = (node, addr)
            theirNonce = theirs
            var out: [PeerMessage] = []
            if !helloSent { helloSent = true; out.append(hello) }
            guard let key = secret else { return (out, .established(node: node, advertise: addr)) }
            out.append(.auth(proof: PeerHandshake.proof(key: key, nonce: theirs, from: me, to: node)))
            return (out, .waiting)
        case let .auth(proof):
            guard let key = secret, let peer, !proven else { return fail("unexpected AUTH") }
            let expected = PeerHandshake.proof(key: key, nonce: nonce, from: peer.node, to: me)
            guard constantTimeEqual(Array(proof.utf8), Array(expected.utf8)) else {
                return fail("wrong cluster secret proof")
            }
            proven = true
            return ([], .established(node: peer.node, advertise: peer.advertise))
        case let .error(reason):
            return ([], .failed(reason: "peer refused the link: \(reason)"))
        default:
            return fail("message before the link was open")
        }
    }

    private func fail(_ reason: String) -> (send: [PeerMessage], outcome: Outcome) {
        ([.error(reason: reason)], .failed(reason: reason))
    }

    /// HMAC-SHA256(secret, "tcp_chat-peer-v1|<nonce>|<prover>|<verifier>") in lowercase hex.
    public static func proof(key: SymmetricKey, nonce: String, from: NodeID, to: NodeID) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("tcp_chat-peer-v1|\(nonce)|\(from)|\(to)".utf8), using: key)
        return mac.map { b in
            let s = String(b, radix: 16)
            return b < 16 ? "0" + s : s
        }.joined()
    }

    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
