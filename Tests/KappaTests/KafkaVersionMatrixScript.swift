import KappaServer

// Every API at every version `kappa serve` advertises, spoken by kafka-python 3's
// protocol classes, which are generated from Kafka's own JSON message definitions: each
// request is encoded by them, each answer decoded by them and re-encoded, and the
// re-encoded bytes must equal the answer byte for byte (a missing, extra or misplaced
// field shows). Semantics are checked on the way: created topics, produced offsets and
// fetched records, idempotent retries, a consumer group from join to leave.

enum KafkaVersionMatrixScript {
    /// argv: bootstrap topic (an empty topic with 2 partitions). Prints one JSON line
    /// per API version checked: {"api","version",...}.
    static let text = """
    import sys, json, socket, struct, time
    from kafka.protocol.producer import ProduceRequest, ProduceResponse, InitProducerIdRequest, InitProducerIdResponse
    from kafka.protocol.consumer import (FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, JoinGroupRequest,
        JoinGroupResponse, SyncGroupRequest, SyncGroupResponse, HeartbeatRequest, HeartbeatResponse, LeaveGroupRequest,
        LeaveGroupResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse)
    from kafka.protocol.admin import (CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
        DescribeGroupsRequest, DescribeGroupsResponse, ListGroupsRequest, ListGroupsResponse)
    from kafka.protocol.metadata import (MetadataRequest, MetadataResponse, FindCoordinatorRequest, FindCoordinatorResponse,
        ApiVersionsRequest, ApiVersionsResponse)
    from kafka.record.memory_records import MemoryRecordsBuilder, MemoryRecords

    host, port = sys.argv[1].rsplit(":", 1)
    topic = sys.argv[2]          # exists, 2 partitions, empty
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(30)
    corr = 0

    def recv_exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk: raise EOFError("connection closed")
            buf += chunk
        return buf

    def send(req, v):
        global corr
        corr += 1
        req.with_header(corr, "matrix")
        sock.sendall(req.encode(version=v, header=True, framed=True))
        return corr

    def call(req, v, resp_cls, decode_version=None):
        c = send(req, v)
        raw = recv_exact(struct.unpack(">i", recv_exact(4))[0])
        dv = v if decode_version is None else decode_version
        resp = resp_cls.decode(raw, version=dv, header=True)
        assert resp.header.correlation_id == c, "correlation id %s, sent %s" % (resp.header.correlation_id, c)
        again = resp.encode(header=True)
        assert again == raw, "%s v%d: the answer's %d bytes are not exactly its fields (re-encoded: %d bytes)" % (resp_cls.__name__, dv, len(raw), len(again))
        return resp

    def ok(api, v, **facts):
        print(json.dumps(dict(api=api, version=v, **facts)), flush=True)

    def check(cond, what):
        if not cond: raise AssertionError(what)

    # ApiVersions 0-2, and 3 (flexible): error 35 in the v0 layout.
    for v in range(0, 3):
        r = call(ApiVersionsRequest[v](), v, ApiVersionsResponse)
        check(r.error_code == 0, "ApiVersions error %d" % r.error_code)
        ok("ApiVersions", v, keys=[[k.api_key, k.min_version, k.max_version] for k in r.api_keys])
    r = call(ApiVersionsRequest[3](client_software_name="matrix", client_software_version="1"), 3, ApiVersionsResponse, decode_version=0)
    check(r.error_code == 35, "ApiVersions v3 answered %d" % r.error_code)
    ok("ApiVersionsUnsupported", 3, keys=len(r.api_keys))

    # Metadata 0-8.
    T = MetadataRequest.MetadataRequestTopic
    for v in range(0, 9):
        r = call(MetadataRequest[v](topics=[T(name=topic)], allow_auto_topic_creation=False), v, MetadataResponse)
        t = [t for t in r.topics if t.name == topic][0]
        check(t.error_code == 0 and len(t.partitions) == 2, "Metadata v%d: %s" % (v, t))
        check(len(r.brokers) == 1 and r.brokers[0].port == int(port), "brokers %s" % r.brokers)
        check(all(p.leader_id == r.brokers[0].node_id for p in t.partitions), "leaders")
        ok("Metadata", v)

    # CreateTopics 2-4.
    CT = CreateTopicsRequest.CreatableTopic
    CFG = CreateTopicsRequest.CreatableTopic.CreatableTopicConfig
    for v in range(2, 5):
        name = "matrix-created-%d" % v
        topics = [CT(name=name, num_partitions=3, replication_factor=1, assignments=[], configs=[CFG(name="retention.ms", value="604800000")]),
                  CT(name="bad name", num_partitions=1, replication_factor=1, assignments=[], configs=[]),
                  CT(name=name + "-r3", num_partitions=1, replication_factor=3, assignments=[], configs=[]),
                  CT(name=name + "-cfg", num_partitions=1, replication_factor=1, assignments=[], configs=[CFG(name="no.such.config", value="1")])]
        if v >= 4:
            topics.append(CT(name=name + "-default", num_partitions=-1, replication_factor=-1, assignments=[], configs=[]))
        r = call(CreateTopicsRequest[v](topics=topics, timeout_ms=1000, validate_only=False), v, CreateTopicsResponse)
        codes = {t.name: t.error_code for t in r.topics}
        check(codes[name] == 0 and codes["bad name"] == 17 and codes[name + "-r3"] == 38 and codes[name + "-cfg"] == 40, "CreateTopics v%d: %s" % (v, codes))
        if v >= 4: check(codes[name + "-default"] == 0, "default partitions")
        r = call(CreateTopicsRequest[v](topics=[topics[0]], timeout_ms=1000, validate_only=False), v, CreateTopicsResponse)
        check(r.topics[0].error_code == 36, "created twice: %d" % r.topics[0].error_code)
        ok("CreateTopics", v)

    # Produce 0-8: one batch each (none and lz4 in turn) into partition 0, acks 1.
    PD = ProduceRequest.TopicProduceData
    PP = ProduceRequest.TopicProduceData.PartitionProduceData
    def batch(n, compression=0, pid=-1, epoch=-1, seq=-1, start=0):
        b = MemoryRecordsBuilder(magic=2, compression_type=compression, batch_size=1 << 20, producer_id=pid, producer_epoch=epoch, base_sequence=seq)
        for i in range(n):
            b.append(timestamp=1700000000000 + start + i, key=b"k%d" % (start + i), value=b'{"n":%d}' % (start + i), headers=[("h", b"x")])
        b.close()
        return b.buffer()
    produced = 0
    for v in range(0, 9):
        recs = batch(5, compression=3 if v % 2 else 0, start=produced)
        r = call(ProduceRequest[v](transactional_id=None, acks=1, timeout_ms=1000, topic_data=[PD(name=topic, partition_data=[PP(index=0, records=recs)])]), v, ProduceResponse)
        p = r.responses[0].partition_responses[0]
        check(p.error_code == 0 and p.base_offset == produced, "Produce v%d: error %d base %d, expected %d" % (v, p.error_code, p.base_offset, produced))
        produced += 5
        ok("Produce", v)
    # acks 0: no answer; the next answer is the next request's.
    send(ProduceRequest[8](transactional_id=None, acks=0, timeout_ms=1000, topic_data=[PD(name=topic, partition_data=[PP(index=0, records=batch(1, start=produced))])]), 8)
    produced += 1
    r = call(MetadataRequest[1](topics=[T(name=topic)]), 1, MetadataResponse)
    ok("ProduceAcks0", 8)

    # InitProducerId 0-1, then idempotence: a retry is a duplicate, a gap is out of order.
    for v in range(0, 2):
        r = call(InitProducerIdRequest[v](transactional_id=None, transaction_timeout_ms=60000), v, InitProducerIdResponse)
        check(r.error_code == 0 and r.producer_id >= 0 and r.producer_epoch == 0, "InitProducerId v%d: %s" % (v, r))
        pid = r.producer_id
        ok("InitProducerId", v, producer_id=pid)
    first = call(ProduceRequest[8](transactional_id=None, acks=-1, timeout_ms=1000, topic_data=[PD(name=topic, partition_data=[PP(index=1, records=batch(3, pid=pid, epoch=0, seq=0))])]), 8, ProduceResponse).responses[0].partition_responses[0]
    dup = call(ProduceRequest[8](transactional_id=None, acks=-1, timeout_ms=1000, topic_data=[PD(name=topic, partition_data=[PP(index=1, records=batch(3, pid=pid, epoch=0, seq=0))])]), 8, ProduceResponse).responses[0].partition_responses[0]
    gap = call(ProduceRequest[8](transactional_id=None, acks=-1, timeout_ms=1000, topic_data=[PD(name=topic, partition_data=[PP(index=1, records=batch(3, pid=pid, epoch=0, seq=9))])]), 8, ProduceResponse).responses[0].partition_responses[0]
    nxt = call(ProduceRequest[8](transactional_id=None, acks=-1, timeout_ms=1000, topic_data=[PD(name=topic, partition_data=[PP(index=1, records=batch(3, pid=pid, epoch=0, seq=3))])]), 8, ProduceResponse).responses[0].partition_responses[0]
    check(first.error_code == 0 and dup.error_code == 0 and dup.base_offset == first.base_offset, "duplicate: %s %s" % (first, dup))
    check(gap.error_code == 45, "gap answered %d" % gap.error_code)
    check(nxt.error_code == 0 and nxt.base_offset == first.base_offset + 3, "next: %s" % nxt)
    ok("Idempotence", 8, producer_id=pid, first=first.base_offset, next=nxt.base_offset)

    # Fetch 4-11 from offset 0 of partition 0: every record produced above.
    FT = FetchRequest.FetchTopic
    FP = FetchRequest.FetchTopic.FetchPartition
    for v in range(4, 12):
        req = FetchRequest[v](replica_id=-1, max_wait_ms=100, min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0, session_epoch=-1,
                              topics=[FT(topic=topic, partitions=[FP(partition=0, current_leader_epoch=-1, fetch_offset=0, log_start_offset=-1, partition_max_bytes=1 << 20)])],
                              forgotten_topics_data=[], rack_id="")
        r = call(req, v, FetchResponse)
        p = r.responses[0].partitions[0]
        check(p.error_code == 0 and p.high_watermark == produced, "Fetch v%d: error %d hw %d, expected %d" % (v, p.error_code, p.high_watermark, produced))
        records = MemoryRecords(p.records)
        n = 0
        while True:
            b = records.next_batch()
            if b is None: break
            for rec in b:
                check(rec.offset == n and rec.key == b"k%d" % n and rec.value == b'{"n":%d}' % n, "record %d: %s" % (n, rec))
                n += 1
        check(n == produced, "Fetch v%d: %d records, expected %d" % (v, n, produced))
        past = FetchRequest[v](replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0, session_epoch=-1,
                               topics=[FT(topic=topic, partitions=[FP(partition=0, current_leader_epoch=-1, fetch_offset=produced + 10, log_start_offset=-1, partition_max_bytes=1 << 20)])],
                               forgotten_topics_data=[], rack_id="")
        check(call(past, v, FetchResponse).responses[0].partitions[0].error_code == 1, "Fetch past the end")
        ok("Fetch", v, records=n)

    # ListOffsets 1-5: earliest, latest.
    LT = ListOffsetsRequest.ListOffsetsTopic
    LP = ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition
    for v in range(1, 6):
        for ts, want in ((-2, 0), (-1, produced)):
            r = call(ListOffsetsRequest[v](replica_id=-1, isolation_level=0, topics=[LT(name=topic, partitions=[LP(partition_index=0, current_leader_epoch=-1, timestamp=ts)])]), v, ListOffsetsResponse)
            p = r.topics[0].partitions[0]
            check(p.error_code == 0 and p.offset == want, "ListOffsets v%d ts %d: %s" % (v, ts, p))
        ok("ListOffsets", v)

    # FindCoordinator 0-2.
    for v in range(0, 3):
        r = call(FindCoordinatorRequest[v](key="mg", key_type=0), v, FindCoordinatorResponse)
        check(r.error_code == 0 and r.port == int(port), "FindCoordinator v%d: %s" % (v, r))
        ok("FindCoordinator", v)

    # Groups: JoinGroup 0-5, each in its own group, with the other group APIs at the
    # versions that cover their ranges.
    JP = JoinGroupRequest.JoinGroupRequestProtocol
    SA = SyncGroupRequest.SyncGroupRequestAssignment
    OT = OffsetCommitRequest.OffsetCommitRequestTopic
    OP = OffsetCommitRequest.OffsetCommitRequestTopic.OffsetCommitRequestPartition
    FTp = OffsetFetchRequest.OffsetFetchRequestTopic
    for i in range(0, 6):
        jv, sv, hv, lv, cv, fv, dv = i, min(i, 3), min(i, 3), min(i, 3), 2 + i, 1 + min(i, 4), min(i, 4)
        group = "matrix-group-%d" % i
        def join(member):
            return call(JoinGroupRequest[jv](group_id=group, session_timeout_ms=30000, rebalance_timeout_ms=30000, member_id=member,
                                             group_instance_id=None, protocol_type="consumer", protocols=[JP(name="range", metadata=b"meta")]), jv, JoinGroupResponse)
        r = join("")
        if jv >= 4:
            check(r.error_code == 79 and r.member_id, "JoinGroup v%d without id: %d" % (jv, r.error_code))
            r = join(r.member_id)
        check(r.error_code == 0 and r.generation_id == 1 and r.leader == r.member_id and len(r.members) == 1 and r.members[0].metadata == b"meta"
              and r.protocol_name == "range", "JoinGroup v%d: %s" % (jv, r))
        member, gen = r.member_id, r.generation_id
        ok("JoinGroup", jv)
        r = call(SyncGroupRequest[sv](group_id=group, generation_id=gen, member_id=member, group_instance_id=None,
                                      assignments=[SA(member_id=member, assignment=b"assigned")]), sv, SyncGroupResponse)
        check(r.error_code == 0 and r.assignment == b"assigned", "SyncGroup v%d: %s" % (sv, r))
        ok("SyncGroup", sv)
        r = call(HeartbeatRequest[hv](group_id=group, generation_id=gen, member_id=member, group_instance_id=None), hv, HeartbeatResponse)
        check(r.error_code == 0, "Heartbeat v%d: %d" % (hv, r.error_code))
        ok("Heartbeat", hv)
        r = call(OffsetCommitRequest[cv](group_id=group, generation_id_or_member_epoch=gen, member_id=member, group_instance_id=None, retention_time_ms=-1,
                                         topics=[OT(name=topic, partitions=[OP(partition_index=0, committed_offset=3 + i, committed_leader_epoch=-1, committed_metadata="")])]), cv, OffsetCommitResponse)
        check(r.topics[0].partitions[0].error_code == 0, "OffsetCommit v%d: %s" % (cv, r))
        ok("OffsetCommit", cv)
        r = call(OffsetFetchRequest[fv](group_id=group, topics=[FTp(name=topic, partition_indexes=[0, 1])]), fv, OffsetFetchResponse)
        got = {p.partition_index: p.committed_offset for p in r.topics[0].partitions}
        check(got == {0: 3 + i, 1: -1}, "OffsetFetch v%d: %s" % (fv, got))
        ok("OffsetFetch", fv)
        r = call(DescribeGroupsRequest[dv](groups=[group], include_authorized_operations=False), dv, DescribeGroupsResponse)
        g = r.groups[0]
        check(g.error_code == 0 and g.group_state == "Stable" and len(g.members) == 1 and g.members[0].member_assignment == b"assigned", "DescribeGroups v%d: %s" % (dv, g))
        ok("DescribeGroups", dv)
        r = call(ListGroupsRequest[min(i, 2)](), min(i, 2), ListGroupsResponse)
        check(r.error_code == 0 and group in [g.group_id for g in r.groups], "ListGroups v%d" % min(i, 2))
        ok("ListGroups", min(i, 2))
        if lv >= 3:
            r = call(LeaveGroupRequest[lv](group_id=group, members=[LeaveGroupRequest.MemberIdentity(member_id=member, group_instance_id=None)]), lv, LeaveGroupResponse)
            check(r.error_code == 0 and r.members[0].error_code == 0, "LeaveGroup v%d: %s" % (lv, r))
        else:
            r = call(LeaveGroupRequest[lv](group_id=group, member_id=member), lv, LeaveGroupResponse)
            check(r.error_code == 0, "LeaveGroup v%d: %d" % (lv, r.error_code))
        ok("LeaveGroup", lv)
        r = call(DescribeGroupsRequest[dv](groups=[group], include_authorized_operations=False), dv, DescribeGroupsResponse)
        check(r.groups[0].group_state == "Empty", "after leaving: %s" % r.groups[0].group_state)

    # DeleteTopics 1-3.
    for v in range(1, 4):
        name = "matrix-created-%d" % (v + 1)
        r = call(DeleteTopicsRequest[v](topic_names=[name, "matrix-no-such-topic"], timeout_ms=1000), v, DeleteTopicsResponse)
        codes = {t.name: t.error_code for t in r.responses}
        check(codes == {name: 0, "matrix-no-such-topic": 3}, "DeleteTopics v%d: %s" % (v, codes))
        ok("DeleteTopics", v)
    """
}
