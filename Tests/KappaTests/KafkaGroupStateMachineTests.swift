import Testing
@testable import KappaServer

/// The consumer-group state machine alone, with a manual clock: time only moves when a
/// test says so, and every answer a request gets comes back as an action.
@Suite struct KafkaGroupStateMachineTests {
    typealias Machine = GroupStateMachine<Int>
    static let second: Int64 = 1_000_000_000

    /// A machine with a 3 s initial delay, and member ids "client-1", "client-2", ...
    static func machine(initialDelay: Int64 = 3 * second) -> Machine {
        var n = 0
        return Machine(groupId: "g", initialDelayNanos: initialDelay, sessionTimeoutNanos: second...(60 * second)) { client in
            n += 1
            return "\(client)-\(n)"
        }
    }

    static func join(_ id: String, client: String = "client", session: Int64 = 10 * second, rebalance: Int64 = 30 * second,
                     protocols: [Machine.MemberProtocol] = [.init(name: "range", metadata: [1])], v4: Bool = true) -> Machine.JoinRequest {
        .init(memberId: id, groupInstanceId: nil, clientId: client, clientHost: "/127.0.0.1", sessionTimeoutNanos: session,
              rebalanceTimeoutNanos: rebalance, protocolType: "consumer", protocols: protocols, requireKnownMemberId: v4)
    }

    /// The join answers among `actions`, by waiter.
    static func joins(_ actions: [Machine.Action]) -> [Int: Machine.JoinResult] {
        var out: [Int: Machine.JoinResult] = [:]
        for a in actions { if case .join(let w, let r) = a { out[w] = r } }
        return out
    }

    static func syncs(_ actions: [Machine.Action]) -> [Int: Machine.SyncResult] {
        var out: [Int: Machine.SyncResult] = [:]
        for a in actions { if case .sync(let w, let r) = a { out[w] = r } }
        return out
    }

    /// Joins with an empty id (v4: MEMBER_ID_REQUIRED), then with the id handed out.
    static func admit(_ m: inout Machine, waiter: Int, now: Int64) -> (String, [Machine.Action]) {
        let first = joins(m.join(join(""), waiter: waiter, now: now))[waiter]!
        #expect(first.errorCode == .memberIdRequired && !first.memberId.isEmpty)
        return (first.memberId, m.join(join(first.memberId), waiter: waiter, now: now))
    }

    @Test func membersJoiningDuringTheInitialDelayLandInOneGeneration() {
        var m = Self.machine()
        let (a, ra) = Self.admit(&m, waiter: 1, now: 0)
        #expect(ra.isEmpty, "the first join waits for the initial delay")
        #expect(m.state == .preparingRebalance)
        let (b, rb) = Self.admit(&m, waiter: 2, now: 2 * Self.second)
        #expect(rb.isEmpty, "a member joining during the delay waits too")
        #expect(m.tick(now: 3 * Self.second).isEmpty, "a newcomer during the delay extends it")
        let done = Self.joins(m.tick(now: 6 * Self.second))
        #expect(done.count == 2)
        #expect(done[1]?.generation == 1 && done[2]?.generation == 1)
        #expect(done[1]?.leader == a && done[2]?.leader == a)
        #expect(done[1]?.members.map(\.memberId) == [a, b], "the leader gets every member's metadata")
        #expect(done[2]?.members.isEmpty == true, "followers get none")
        #expect(m.state == .completingRebalance)
    }

    @Test func leaderSyncAssignsEveryoneAndTheGroupIsStable() {
        var m = Self.machine(initialDelay: 0)
        let (a, _) = Self.admit(&m, waiter: 1, now: 0)
        #expect(m.generation == 1 && m.state == .completingRebalance)
        let (b, _) = Self.admit(&m, waiter: 2, now: 1)
        #expect(m.state == .preparingRebalance, "a newcomer rebalances")
        #expect(m.heartbeat(memberId: a, generation: 1, now: 2) == .rebalanceInProgress)
        let rejoined = Self.joins(m.join(Self.join(a), waiter: 3, now: 3))
        #expect(rejoined[2]?.generation == 2 && rejoined[3]?.generation == 2)
        // The follower's sync waits for the leader's.
        #expect(m.sync(memberId: b, generation: 2, assignments: [:], waiter: 4, now: 4).isEmpty)
        let synced = Self.syncs(m.sync(memberId: a, generation: 2, assignments: [a: [0, 1], b: [2, 3]], waiter: 5, now: 5))
        #expect(synced[4] == .init(errorCode: .none, assignment: [2, 3]))
        #expect(synced[5] == .init(errorCode: .none, assignment: [0, 1]))
        #expect(m.state == .stable)
        #expect(m.heartbeat(memberId: b, generation: 2, now: 6) == .none)
        #expect(m.heartbeat(memberId: b, generation: 1, now: 6) == .illegalGeneration)
        #expect(m.heartbeat(memberId: "nobody", generation: 2, now: 6) == .unknownMemberId)
    }

    @Test func everyMemberLeavingEmptiesTheGroupAndItReforms() {
        var m = Self.machine(initialDelay: 0)
        let (a, _) = Self.admit(&m, waiter: 1, now: 0)
        let (b, _) = Self.admit(&m, waiter: 2, now: 0)
        _ = m.join(Self.join(a), waiter: 3, now: 0)
        _ = m.sync(memberId: b, generation: 2, assignments: [:], waiter: 4, now: 0)
        _ = m.sync(memberId: a, generation: 2, assignments: [a: [1], b: [2]], waiter: 5, now: 0)
        #expect(m.state == .stable)
        let (codes, actions) = m.leave(memberIds: [a, b], now: 1)
        #expect(codes == [.none, .none] && actions.isEmpty)
        #expect(m.state == .empty && m.members.isEmpty)
        #expect(m.commitAllowed(memberId: "", generation: -1, now: 1) == .none, "a standalone commit to an empty group")
        // The group forms again, in a new generation.
        let (c, rc) = Self.admit(&m, waiter: 6, now: 2)
        let again = Self.joins(rc)[6]
        #expect(again?.errorCode == ErrorCode.none && again?.leader == c)
        #expect(again!.generation > 2)
    }

    @Test func aMemberThatStopsHeartbeatingIsRemoved() {
        var m = Self.machine(initialDelay: 0)
        let (a, _) = Self.admit(&m, waiter: 1, now: 0)
        let (b, _) = Self.admit(&m, waiter: 2, now: 0)
        _ = m.join(Self.join(a), waiter: 3, now: 0)
        _ = m.sync(memberId: b, generation: 2, assignments: [:], waiter: 4, now: 0)
        _ = m.sync(memberId: a, generation: 2, assignments: [:], waiter: 5, now: 0)
        // a keeps heartbeating; b falls silent. Its session (10 s) ends at 10 s.
        for t in stride(from: Self.second, through: 9 * Self.second, by: Int(Self.second)) {
            #expect(m.heartbeat(memberId: a, generation: 2, now: t) == .none)
            #expect(m.tick(now: t).isEmpty)
        }
        #expect(m.nextDeadline == 10 * Self.second)
        _ = m.tick(now: 10 * Self.second)
        #expect(m.member(b) == nil, "the silent member is gone")
        #expect(m.state == .preparingRebalance)
        #expect(m.heartbeat(memberId: a, generation: 2, now: 10 * Self.second) == .rebalanceInProgress)
        let rejoined = Self.joins(m.join(Self.join(a), waiter: 6, now: 11 * Self.second))[6]
        #expect(rejoined?.generation == 3 && rejoined?.members.map(\.memberId) == [a])
    }

    @Test func aMemberThatDoesNotRejoinIsDroppedAtTheRebalanceDeadline() {
        var m = Self.machine(initialDelay: 0)
        let (a, _) = Self.admit(&m, waiter: 1, now: 0)
        let (b, _) = Self.admit(&m, waiter: 2, now: 0)
        // a never rejoins, but keeps heartbeating (a consumer stuck in processing):
        // the join ends at the rebalance timeout (30 s) without it.
        for t in stride(from: Self.second, through: 29 * Self.second, by: Int(Self.second)) {
            _ = m.heartbeat(memberId: a, generation: 1, now: t)
            #expect(Self.joins(m.tick(now: t)).isEmpty)
        }
        let done = Self.joins(m.tick(now: 30 * Self.second))
        #expect(done[2]?.generation == 2 && done[2]?.members.map(\.memberId) == [b])
        #expect(m.member(a) == nil)
    }

    @Test func unknownAndPendingMembers() {
        var m = Self.machine(initialDelay: 0)
        #expect(Self.joins(m.join(Self.join("made-up"), waiter: 1, now: 0))[1]?.errorCode == .unknownMemberId)
        let first = Self.joins(m.join(Self.join(""), waiter: 2, now: 0))[2]!
        #expect(first.errorCode == .memberIdRequired)
        // The handed-out id expires after one session timeout unused.
        _ = m.tick(now: 11 * Self.second)
        #expect(Self.joins(m.join(Self.join(first.memberId), waiter: 3, now: 12 * Self.second))[3]?.errorCode == .unknownMemberId)
        // Before v4 a member joins at once with a made id.
        let old = Self.joins(m.join(Self.join("", v4: false), waiter: 4, now: 13 * Self.second))[4]
        #expect(old?.errorCode == ErrorCode.none && old?.generation == 1)
        #expect(Self.joins(m.join(Self.join("", session: 100), waiter: 5, now: 14 * Self.second))[5]?.errorCode == .invalidSessionTimeout)
        let other = [Machine.MemberProtocol(name: "roundrobin", metadata: [])]
        #expect(Self.joins(m.join(Self.join("", protocols: other), waiter: 6, now: 15 * Self.second))[6]?.errorCode == .inconsistentGroupProtocol)
    }

    @Test func commitsFollowKafkasRules() {
        var m = Self.machine(initialDelay: 0)
        let (a, _) = Self.admit(&m, waiter: 1, now: 0)
        #expect(m.commitAllowed(memberId: a, generation: 1, now: 1) == .rebalanceInProgress, "between join and sync")
        _ = m.sync(memberId: a, generation: 1, assignments: [a: [9]], waiter: 2, now: 1)
        #expect(m.commitAllowed(memberId: a, generation: 1, now: 2) == .none)
        #expect(m.commitAllowed(memberId: a, generation: 0, now: 2) == .illegalGeneration)
        #expect(m.commitAllowed(memberId: "", generation: -1, now: 2) == .unknownMemberId, "no standalone commits while members are live")
        let (_, _) = Self.admit(&m, waiter: 3, now: 3)
        #expect(m.state == .preparingRebalance)
        #expect(m.commitAllowed(memberId: a, generation: 1, now: 4) == .none, "members commit what they read before rejoining")
    }

    @Test func theProtocolEveryMemberSupportsWinsTheVote() {
        var m = Self.machine(initialDelay: 0)
        let both = [Machine.MemberProtocol(name: "roundrobin", metadata: [1]), .init(name: "range", metadata: [2])]
        let (a, _) = Self.admit(&m, waiter: 1, now: 0)
        #expect(m.protocolName == "range")
        var second = Self.join("", protocols: both)
        let id = Self.joins(m.join(second, waiter: 2, now: 0))[2]!.memberId
        second.memberId = id
        _ = m.join(second, waiter: 2, now: 0)
        let done = Self.joins(m.join(Self.join(a), waiter: 3, now: 0))
        #expect(done[2]?.protocolName == "range" && done[3]?.protocolName == "range", "only range is supported by both")
        #expect(done[3]?.members.first { $0.memberId == id }?.metadata == [2], "each member's metadata for the chosen protocol")
    }
}
