import Foundation
import PackagePlugin

/// Writes `BuildInfo.swift` (the commit the binary is built from) into the `genflow` target before
/// each build, for `genflow --version`.
///
/// A prebuild command (it may run only programs that are already installed, so it is a shell line
/// around git). The file is rewritten only when the commit changes, so an unchanged tree recompiles
/// nothing. Outside a git checkout (a tarball) the commit is `unknown`; a tree with uncommitted
/// changes to tracked files adds `-dirty`.
@main
struct GenflowBuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        let script = #"""
            set -u
            commit=$(git -C "$1" rev-parse --short=12 HEAD 2>/dev/null) || commit=unknown
            if [ "$commit" != unknown ] && [ -n "$(git -C "$1" status --porcelain --untracked-files=no 2>/dev/null | head -1)" ]; then
                commit="$commit-dirty"
            fi
            mkdir -p "$2"
            printf '// Generated before each build by the GenflowBuildInfo plugin.\nenum BuildInfo {\n    static let commit = "%s"\n}\n' "$commit" > "$2/BuildInfo.swift.new"
            if cmp -s "$2/BuildInfo.swift.new" "$2/BuildInfo.swift"; then rm "$2/BuildInfo.swift.new"; else mv "$2/BuildInfo.swift.new" "$2/BuildInfo.swift"; fi
            """#
        return [
            .prebuildCommand(
                displayName: "genflow: the commit for --version",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", script, "genflow-build-info", context.package.directoryURL.path, output.path],
                outputFilesDirectory: output
            )
        ]
    }
}
