import ArgumentParser

/// Where the node is, for the commands that talk to one node (`client`, `status`).
struct NodeAddressOptions: ParsableArguments {
    @Option(name: [.short, .customLong("address"), .customLong("adress")], help: "Node address.")
    var address = "localhost"
    @Option(name: .shortAndLong, help: "Node port.")
    var port = 8888
}

/// TLS to that one node (`client`, `status`; `bench` words its own for many nodes).
struct NodeTLSOptions: ParsableArguments {
    @Flag(help: "Use TLS: the node's certificate must verify (system trust store or --tls-ca) and name the host.")
    var tls = false
    @Option(help: ArgumentHelp("CA certificates (PEM) the node's certificate must chain to; implies --tls.", valueName: "FILE"))
    var tlsCa: String?
}
