import CUV
import ChatCore

/// Answers a `tcp_chat status` request (docs/operations.md): `NONCE`, then `AUTH <proof>`
/// or `PUBLIC`, then one JSON line, then close. Called on the node's loop thread only.
final class StatusHandler: ConnectionHandler {
    private unowned let node: Node
    let conn: Connection
    private var framer = MessageFramer(maxBytes: 256)
    private let nonce: String

    init(node: Node, conn: Connection) {
        self.node = node
        self.conn = conn
        nonce = node.newNonce()
    }

    func start(rest: [UInt8]) {
        let p = Payload.line("NONCE \(nonce)")
        conn.send(p, length: p.count)
        conn.setTimer(5000)
        if !rest.isEmpty { rest.withUnsafeBytes { didRead($0) } }
    }

    func didRead(_ bytes: UnsafeRawBufferPointer) {
        framer.append(bytes)
        guard conn.state == .open, let frame = framer.next() else { return }
        guard case .message(let line) = frame else { return conn.close(reason: "status: line too long") }
        let text = String(decoding: line, as: UTF8.self)
        let full: Bool
        if text == "PUBLIC" {
            full = node.secret == nil
        } else if text.hasPrefix("AUTH "), let secret = node.secret {
            full = constantTimeEqual(Array(text.utf8.dropFirst(5)), Array(StatusAccess.proof(secret: secret, nonce: nonce).utf8))
            if !full { node.refusal("status request with a wrong secret proof", metadata: ["from": "\(conn.peerAddress())"]) }
        } else {
            full = node.secret == nil
        }
        let p = Payload.line(node.statusReport(full: full).serialized)
        conn.send(p, length: p.count)
        conn.closeAfterFlush(reason: "status sent")
    }

    func timerFired() { conn.close(reason: "status: no answer to NONCE") }
    func didConnect(_ status: Int32) {}
    func willClose() {}
    func didClose() { node.forget(conn) }
}
