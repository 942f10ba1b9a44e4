import Foundation
import PackagePlugin

/// Writes the checkout's git commit into the `gateway` target, for `gateway --version`: an
/// operator looking at a running binary should not have to guess which commit it came from.
/// A prebuild command, so it runs on every build; the file is rewritten only when the commit
/// changes, so an unchanged checkout does not recompile anything. Outside a git checkout (a
/// source tarball) the commit reads "unknown".
@main
struct GitCommitPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let outputs = context.pluginWorkDirectoryURL.appending(path: "Generated")
        let script = """
            set -u
            commit=$(git -C "$1" rev-parse --short=12 HEAD 2>/dev/null) || commit=unknown
            if [ "$commit" != unknown ] && [ -n "$(git -C "$1" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
                commit="$commit-modified"
            fi
            mkdir -p "$2"
            printf '/// Written by the GitCommit build plugin.\\nenum BuildInfo {\\n    static let gitCommit = "%s"\\n}\\n' "$commit" > "$3"
            cmp -s "$3" "$2/BuildInfo.swift" || mv "$3" "$2/BuildInfo.swift"
            """
        return [
            .prebuildCommand(
                displayName: "Recording the git commit for --version",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", script, "sh", context.package.directoryURL.path, outputs.path,
                            context.pluginWorkDirectoryURL.appending(path: "BuildInfo.swift.new").path],
                outputFilesDirectory: outputs)
        ]
    }
}
