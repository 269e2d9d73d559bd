/// `tcp_chat bench`: a load tool for a node or a cluster (being written).
public enum ChatBench {}
