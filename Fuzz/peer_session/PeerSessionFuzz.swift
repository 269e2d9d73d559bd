// Fuzz target `peer_session`: a node's handling of one hostile peer link end to end, as
// the runtime drives it (Sources/ChatNode/PeerLink.swift), without sockets: the bytes a
// peer sends, cut into reads, go to a `PeerSession` (line limits, HELLO/AUTH, ERROR), then
// to the node's `Cluster` and `Hub`; the clock advances and the node ticks between reads;
// at the end the node builds its status report from what the peer told it.
//
// Input: [cfg][cuts][peer bytes…]
//   cfg  bit 0: the node has a cluster secret (the peer cannot prove it: the handshake
//               must refuse, never establish); bit 1: a local login waits on the cluster
//               from the start; bits 2-3: ms per tick step (1, 100, 500, 1500)
//   cuts each read is (cuts & 0x3F) + 1 bytes long; bit 6: tick between reads; bit 7:
//        the node also runs its own opening (HB, STATE)
//
// Invariants: no crash (no trap on any number, no overflow in the status report);
// a secret-mode link never opens; every line the node sends decodes; the node tracks at
// most `Limits.maxClusterNodes` others and its HB-learned neighbor sets are bounded; the status
// report holds no raw control character and is bounded by what the node may hold; a
// local login is answered (200 or 403) once the clock has passed the claim answer
// deadline; the session reports at most one terminal event and nothing after it.

#if canImport(Glibc)
import Glibc
#endif

final class SessionFuzzSink: SessionSink {
    var replies: [String] = []
    var finished = 0
    func enqueue(_ payload: Payload, length: Int) {
        require(length >= 0 && length <= payload.count, "enqueue length \(length) of \(payload.count)")
        replies.append(String(decoding: UnsafeRawBufferPointer(rebasing: payload.bytes[0..<length]), as: UTF8.self))
    }
    func loginFinished(_ s: Session?) { finished += 1 }
    func endSession() {}
}

final class SessionFuzzTransport: ClusterTransport {
    var sent = 0
    var learned = 0
    func send(_ line: Payload, to neighbor: NodeID) {
        sent += 1
        // Every line the node sends must be one the protocol (and so every honest node) accepts.
        let bytes = UnsafeRawBufferPointer(rebasing: line.bytes[0..<line.count])
        require(bytes.last == 0x0A, "a line without its newline")
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes.dropLast()), as: UTF8.self)
        do { _ = try PeerMessage.decode(text) } catch { fuzzFail("the node sent a line it would refuse: \(text.prefix(200)) (\(error))") }
    }
    func learned(node: NodeID, address: String) {
        learned += 1
        require(HostPort(address) != nil, "learned an address that is not a HostPort: \(address.debugDescription)")
    }
}

let me = NodeID("00000000000000aa")!
let secretBytes: [UInt8] = Array("a cluster secret of 32 bytes....".utf8)

@_cdecl("LLVMFuzzerTestOneInput")
public func peerSessionFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var r = FuzzReader(Array(UnsafeBufferPointer(start: data, count: size)))
    let cfg = r.byte()
    let cuts = r.byte()
    let secret = cfg & 1 != 0
    let stepMs: UInt64 = [1, 100, 500, 1500][Int((cfg >> 2) & 3)]
    var nowMs: UInt64 = 1_000
    let wallMs: UInt64 = 1_700_000_000_000

    var limits = Limits()
    limits.rateLimit = 0
    let hub = Hub(limits: limits)
    let cluster = Cluster(me: me, advertise: "10.0.0.1:8888", hub: hub)
    hub.cluster = cluster
    let transport = SessionFuzzTransport()
    cluster.transport = transport
    cluster.clock = { (nowMs, wallMs &+ nowMs) }

    let sink = SessionFuzzSink()
    var loginStartedMs: UInt64?
    func login() {
        guard loginStartedMs == nil else { return }
        loginStartedMs = nowMs
        switch hub.login(username: ChatName("alice", maxLength: 32)!, chatID: ChatName("room", maxLength: 64)!, framing: .line, sink: sink) {
        case .accepted, .nameTaken: sink.finished += 1
        case .pending: break
        }
    }
    if cfg & 2 != 0 { login() }

    var session = PeerSession(handshake: PeerHandshake(me: me, advertise: "10.0.0.1:8888",
                                                        secret: secret ? secretBytes : nil, nonce: "nodeNonce0123456"))
    var remote: NodeID?
    var terminal = 0
    var afterTerminal = false
    func on(_ e: PeerSession.Event) {
        if terminal > 0 { afterTerminal = true }
        switch e {
        case .send(let m):
            let line = m.encoded
            do { _ = try PeerMessage.decode(line) } catch { fuzzFail("the session sent a line it would refuse: \(line.prefix(200))") }
        case .established(let node, let adv):
            require(!secret, "a secret-mode link opened without the secret")
            require(remote == nil, "established twice")
            require(HostPort(adv) != nil, "established with an address that is not a HostPort")
            remote = node
            cluster.linkUp(node, advertise: adv, nowMs: nowMs)
            if cuts & 0x80 != 0 { cluster.tick(nowMs: nowMs) }
        case .refused, .protocolError, .peerClosed:
            terminal += 1
            if let remote { cluster.linkDown(remote, nowMs: nowMs) }
        }
    }

    let readLen = Int(cuts & 0x3F) + 1
    let tickBetween = cuts & 0x40 != 0
    var reads = 0
    while !r.atEnd && !session.finished {
        let n = min(readLen, r.remaining)
        let chunk = r.bytes[r.pos..<(r.pos + n)]
        r.pos += n
        chunk.withUnsafeBytes { b in
            session.receive(b, cluster: cluster, nowMs: nowMs, wallMs: wallMs &+ nowMs) { on($0) }
        }
        reads += 1
        if tickBetween || reads % 8 == 0 {
            nowMs += stepMs
            cluster.tick(nowMs: nowMs)
        }
        if reads == 4 { login() }
        require(cluster.nodes.count <= Limits.maxClusterNodes, "tracks \(cluster.nodes.count) nodes")
    }
    require(terminal <= 1 && !afterTerminal, "events after the session ended")
    require(!(secret && session.established), "a secret-mode session is established")

    // The node's status report, public and full, from what the peer said.
    var snap = StatusSnapshot()
    snap.listen = "10.0.0.1:8888"
    snap.connections = 1
    if let remote {
        snap.links = [.init(peer: remote, address: "10.0.0.2:1", dialed: false, lastHeardMs: nowMs, queueBytes: 0)]
    }
    for full in [false, true] {
        let text = cluster.statusReport(snap, nowMs: nowMs, full: full).serialized
        require(!text.utf8.contains { $0 < 0x20 || $0 == 0x7F }, "a raw control byte in the status report")
        require(text.utf8.count < 64 * 1024 + size * 64, "status report of \(text.utf8.count) bytes from \(size) input bytes")
    }

    // The link is gone; time passes: a login waiting on the cluster is answered.
    login()
    if let remote { cluster.linkDown(remote, nowMs: nowMs) }
    let deadline = nowMs + cluster.claimAnswerMs + cluster.peerTimeoutMs + 2 * Tunables.claimResendMs
    while nowMs <= deadline {
        nowMs += 500
        cluster.tick(nowMs: nowMs)
    }
    require(sink.finished == 1, "a login was answered \(sink.finished) times after the link went")
    return 0
}
