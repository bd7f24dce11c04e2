import ArgumentParser

@main
struct Itaku: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "itaku",
        abstract: "Itaku, the entrusted-data gateway.",
        discussion: """
            Settings come from the command line (--http-port 8081), the environment \
            (ITAKU_HTTP_PORT=8081), Config/itaku.yaml, then defaults; see Docs/configuration.md.
            """,
        subcommands: [Serve.self, Migrate.self, CheckConfig.self, Keys.self, Demo.self, VerifyLog.self, VerifyDisposal.self, Token.self, RebuildLookupKeys.self, BenchLog.self, BenchSetup.self, BenchSeal.self],
        defaultSubcommand: Serve.self
    )
}
