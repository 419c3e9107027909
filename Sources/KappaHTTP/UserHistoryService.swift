import Hummingbird
import KappaCore
import KappaLog

/// The user-history index behind `/v1/users/{user_id}/events`. Its storage engine
/// (`KappaHistory`) is built on another branch; until it is merged the route answers 503.
final class UserHistoryService: @unchecked Sendable {
    let directory: DataDirectory

    init(directory: DataDirectory) { self.directory = directory }

    /// Readiness of the index (nil: ready, or not part of this build).
    var notReady: String? { nil }

    func start() {}
    func stop() {}
}

extension KappaAPI {
    func addUserRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/v1/users/:user_id/events") { _, _ -> Response in
            throw Problem.notReady("the user-history index (KappaHistory) is not part of this build yet")
        }
    }
}
