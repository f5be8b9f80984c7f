defmodule Mix.Tasks.Compile.H2flowNative do
  @moduledoc false
  # Mix compiler: builds native/h2flow_nif with cargo, installs it as
  # priv/native/libh2flow_nif-<profile>.so.
  #
  # One library per cargo profile (dev for :dev and :test, release for :prod and :bench), so
  # `mix test` and `MIX_ENV=bench mix h2flow.bench` do not replace each other's library in the
  # shared priv/ and each stays a no-op until a source changes. H2Flow.Native loads the file
  # of profile/0 as it was when that module was compiled, in the same Mix environment.
  #
  # mix.exs loads this file with Code.require_file: a task under lib/ would not exist yet while
  # lib/ is being compiled, and lib/h2flow/native.ex needs the library as soon as it is loaded.

  use Mix.Task.Compiler

  @crate "h2flow_nif"
  # What cargo looks at; a newer mtime than the installed library means "run cargo".
  @sources ["native/**/*.rs", "native/**/Cargo.toml", "Cargo.toml", "Cargo.lock"]

  @rustup_hint """
  Install Rust (stable, 1.91 or newer) with rustup, then open a new shell:

      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh

  or, if Rust is installed already, put it on PATH: source "$HOME/.cargo/env"
  """

  @impl true
  def run(args) do
    config = Mix.Project.config()
    profile = profile()

    if "--force" not in args and up_to_date?(build_native_dir(config), profile) do
      {:noop, []}
    else
      build_and_install(config, profile)
      {:ok, []}
    end
  end

  # Removes this environment's profile only: the other profile's library is still valid.
  @impl true
  def clean do
    profile = profile()

    for dir <- [source_native_dir(), build_native_dir(Mix.Project.config())],
        file <- [lib_file(profile), profile_file(profile)] do
      File.rm(Path.join(dir, file))
    end

    :ok
  end

  @doc false
  # Also used by the `test.all` alias in mix.exs.
  def cargo! do
    System.find_executable("cargo") ||
      Mix.raise(
        "h2flow needs cargo to build its NIF, but cargo is not on PATH.\n\n" <> @rustup_hint
      )
  end

  @doc false
  # The cargo profile of a Mix environment. Also read by lib/h2flow/native.ex when it is
  # compiled, so the module loads the library this compiler installed for the same environment.
  @spec profile(atom()) :: :dev | :release
  def profile(env \\ Mix.env()) when is_atom(env) do
    if env in [:prod, :bench], do: :release, else: :dev
  end

  @doc false
  # The library's file name without its extension, as :erlang.load_nif/2 wants it.
  @spec lib_name(:dev | :release) :: String.t()
  def lib_name(profile), do: "libh2flow_nif-#{profile}"

  # The record lives next to the library, not in _build: priv/ is shared (Mix symlinks
  # _build/<env>/lib/h2flow/priv to it, also for path deps), so only a record that travels
  # with the file can tell that the installed library is complete and which profile built it.
  defp up_to_date?(dir, profile) do
    with {:ok, %File.Stat{mtime: installed}} <-
           File.stat(Path.join(dir, lib_file(profile)), time: :posix),
         {:ok, recorded} <- File.read(Path.join(dir, profile_file(profile))) do
      String.trim(recorded) == Atom.to_string(profile) and newest_source_mtime() < installed
    else
      _ -> false
    end
  end

  defp newest_source_mtime do
    for pattern <- @sources,
        path <- Path.wildcard(pattern),
        {:ok, %File.Stat{mtime: mtime}} <- [File.stat(path, time: :posix)],
        reduce: 0,
        do: (newest -> max(newest, mtime))
  end

  defp build_and_install(config, profile) do
    cargo = cargo!()
    args = ["build", "-p", @crate, "--message-format=json-render-diagnostics"]
    args = if profile == :release, do: args ++ ["--release"], else: args

    Mix.shell().info("Compiling #{@crate} with cargo (#{profile} profile)")
    # The installed library gets this mtime, so a source saved while cargo runs counts as newer.
    started = System.os_time(:second)

    # Cargo runs in the root of this project (the cwd Mix gives a compiler, also for a path or
    # git dependency); its progress and diagnostics go to stderr, the JSON messages to stdout.
    {messages, status} = System.cmd(cargo, args)

    if status != 0 do
      Mix.raise(
        "cargo #{Enum.join(args, " ")} failed with exit status #{status} (see its output above)"
      )
    end

    artifact = artifact!(messages)
    install(artifact, source_native_dir(), profile, started)
    install_into_build(config, artifact, profile, started)
  end

  # Mix links _build/<env>/lib/h2flow/priv to priv/ before compilers run, but only if priv/
  # existed then, which it does not on the first compile of a fresh clone. Link it now (or copy
  # it, for build_embedded), the same way Mix would on the next compile.
  defp install_into_build(config, artifact, profile, started) do
    build_priv = Path.join(Mix.Project.app_path(config), "priv")
    source_priv = Path.expand("priv")
    Mix.Utils.symlink_or_copy(config[:build_embedded], source_priv, build_priv)

    unless links_to?(build_priv, source_priv) do
      install(artifact, build_native_dir(config), profile, started)
    end
  end

  defp links_to?(link, target) do
    case File.read_link(link) do
      {:ok, dest} -> Path.expand(dest, Path.dirname(link)) == target
      {:error, _} -> false
    end
  end

  defp install(artifact, dir, profile, mtime) do
    File.mkdir_p!(dir)
    lib = Path.join(dir, lib_file(profile))
    record = Path.join(dir, profile_file(profile))

    # Without a record the library counts as stale, so a crash halfway through rebuilds.
    File.rm(record)
    # Delete before copying: a VM that has the old library mapped keeps the old inode instead
    # of seeing its code overwritten (and crashing), as rustler's compiler.ex does.
    File.rm(lib)
    File.cp!(artifact, lib)
    File.touch!(lib, mtime)
    File.write!(record, "#{profile}\n")
  end

  # cargo's own report of where it put the library, so CARGO_TARGET_DIR, a target-dir in a
  # .cargo/config.toml and --target triples all work without guessing target/<profile>/.
  defp artifact!(messages) do
    suffix = artifact_suffix()

    paths =
      for line <- String.split(messages, "\n"),
          String.contains?(line, ~s("reason":"compiler-artifact")),
          String.contains?(line, ~s("name":"#{@crate}")),
          [_, list] <- [Regex.run(~r/"filenames":\[([^\]]*)\]/, line)],
          [_, path] <- Regex.scan(~r/"((?:[^"\\]|\\.)*)"/, list),
          path = String.replace(path, ~r/\\(.)/, "\\1"),
          String.ends_with?(path, suffix),
          do: path

    case paths do
      [path | _] -> path
      [] -> Mix.raise("cargo built #{@crate} but did not report a *#{suffix} for it")
    end
  end

  defp artifact_suffix do
    case :os.type() do
      {:win32, _} -> ".dll"
      {:unix, :darwin} -> ".dylib"
      {:unix, _} -> ".so"
    end
  end

  # :erlang.load_nif/2 appends .so on every Unix (macOS included) and .dll on Windows.
  defp lib_file(profile) do
    case :os.type() do
      {:win32, _} -> lib_name(profile) <> ".dll"
      {:unix, _} -> lib_name(profile) <> ".so"
    end
  end

  defp profile_file(profile), do: lib_name(profile) <> ".profile"

  defp source_native_dir, do: Path.expand("priv/native")
  defp build_native_dir(config), do: Path.join(Mix.Project.app_path(config), "priv/native")
end
