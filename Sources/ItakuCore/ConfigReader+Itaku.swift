import Configuration
import Foundation
import SystemPackage

extension ConfigReader {
    /// Itaku's provider hierarchy: command line (`--http-port 8081`) > environment
    /// (`ITAKU_HTTP_PORT=8081`) > the YAML file (`http: { port: 8081 }`) > defaults in code.
    public static func itaku(
        arguments: [String] = [],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        configFile: String? = nil
    ) async throws -> ConfigReader {
        let file = configFile ?? environment["ITAKU_CONFIG_FILE"] ?? "Config/itaku.yaml"
        return ConfigReader(providers: [
            CommandLineArgumentsProvider(arguments: ["itaku"] + arguments),
            EnvironmentVariablesProvider(environmentVariables: environment).prefixKeys(with: "itaku"),
            try await FileProvider<YAMLSnapshot>(filePath: .init(file), allowMissing: true),
        ])
    }
}
