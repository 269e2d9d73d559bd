import CUV
import ChatCore

/// A minimal HTTP/1.x responder for `GET /metrics` and `GET /healthz`, one request per
/// connection. Called on the node's loop thread only.
final class MetricsHandler: ConnectionHandler {
    private unowned let node: Node
    let conn: Connection
    private var request: [UInt8] = []

    init(node: Node, conn: Connection) {
        self.node = node
        self.conn = conn
    }

    func start() {
        conn.startReading()
        conn.setTimer(Tunables.metricsTimeoutMs)
    }

    func didRead(_ bytes: UnsafeRawBufferPointer) {
        request.append(contentsOf: bytes)
        guard let end = request.firstRange(of: [13, 10, 13, 10]) else {
            if request.count > Tunables.maxMetricsRequestBytes { respond(431, "request header too large\n") }
            return
        }
        let head = String(decoding: request[..<end.lowerBound], as: UTF8.self)
        let parts = head.split(separator: "\r\n").first?.split(separator: " ") ?? []
        guard parts.count >= 2, parts[0] == "GET" else { return respond(405, "only GET\n") }
        switch parts[1] {
        case "/metrics": respond(200, node.metrics?.render(node) ?? [], type: "text/plain; version=0.0.4; charset=utf-8")
        case "/healthz": respond(200, "ok\n")
        default: respond(404, "not found: try /metrics or /healthz\n")
        }
    }

    private func respond(_ code: Int, _ body: String) { respond(code, Array(body.utf8)) }

    private func respond(_ code: Int, _ body: [UInt8], type: String = "text/plain; charset=utf-8") {
        guard conn.state == .open else { return }
        let reason = [200: "OK", 404: "Not Found", 405: "Method Not Allowed", 431: "Request Header Fields Too Large"][code] ?? "Error"
        let head = "HTTP/1.1 \(code) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + body
        let p = bytes.withUnsafeBytes { Payload.raw($0) }
        conn.send(p, length: p.count)
        conn.closeAfterFlush(reason: "metrics served")
    }

    func timerFired() { conn.close(reason: "metrics: request timeout") }
    func didConnect(_ status: Int32) {}
    func willClose() {}
    func didClose() { node.forget(conn) }
}
