defmodule H2Flow.PathDependencyTest do
  # Builds a throwaway project that depends on this checkout, in separate `mix` processes:
  # the NIF must be built, installed and found through Mix's priv symlink for a path dependency.
  use ExUnit.Case, async: true

  @moduletag :path_dependency
  @moduletag timeout: 900_000

  @repo Path.expand("../..", __DIR__)

  setup_all do
    dir = Path.join(System.tmp_dir!(), "h2flow-path-dep-#{System.unique_integer([:positive])}")
    File.rm_rf!(dir)
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)

    # Deps are compiled in :prod unless told otherwise, which would build the release profile
    # (a second, slower cargo build); in :dev the child reuses the library these tests use.
    File.write!(Path.join(dir, "mix.exs"), """
    defmodule Throwaway.MixProject do
      use Mix.Project

      def project do
        [app: :throwaway, version: "0.1.0", deps: [{:h2flow, path: #{inspect(@repo)}, env: :dev}]]
      end
    end
    """)

    {output, status} = mix(dir, ["compile"])
    assert status == 0, "mix compile failed in the throwaway project:\n" <> output

    %{dir: dir}
  end

  test "the NIF loads from the priv dir Mix links for a path dependency", %{dir: dir} do
    script = ~S"""
    IO.puts("priv_dir=#{:code.priv_dir(:h2flow)}")
    IO.puts("nif_loaded=#{H2Flow.Native.nif_loaded()}")
    IO.puts("profile=#{H2Flow.Native.profile()}")
    """

    {output, status} = mix(dir, ["run", "-e", script])
    assert status == 0, "mix run failed in the throwaway project:\n" <> output
    assert output =~ "nif_loaded=true"
    assert output =~ "profile=dev\n"
    assert File.exists?(Path.join(@repo, "priv/native/libh2flow_nif-dev.so"))
    assert output =~ "priv_dir=#{Path.join(dir, "_build/dev/lib/h2flow/priv")}\n"

    link = Path.join(dir, "_build/dev/lib/h2flow/priv")
    assert {:ok, target} = File.read_link(link)
    assert Path.expand(target, Path.dirname(link)) == Path.join(@repo, "priv")
  end

  test "a second compile does not run cargo", %{dir: dir} do
    # A `cargo` first on PATH that leaves a mark and fails: any cargo call shows.
    fake_bin = Path.join(dir, "fake_bin")
    marker = Path.join(dir, "cargo_was_called")
    File.mkdir_p!(fake_bin)
    File.write!(Path.join(fake_bin, "cargo"), "#!/bin/sh\ntouch '#{marker}'\nexit 1\n")
    File.chmod!(Path.join(fake_bin, "cargo"), 0o755)

    path = fake_bin <> ":" <> System.get_env("PATH", "")
    {output, status} = mix(dir, ["compile"], [{"PATH", path}])

    assert status == 0, "second mix compile failed:\n" <> output
    refute File.exists?(marker), "second mix compile ran cargo:\n" <> output
    refute output =~ "Compiling h2flow_nif"
  end

  defp mix(dir, args, env \\ []) do
    mix = System.find_executable("mix") || flunk("mix is not on PATH")

    # A clean Mix environment for the child: its dependency env (:dev) picks the cargo profile.
    base_env = [
      {"MIX_ENV", "dev"},
      {"MIX_EXS", nil},
      {"MIX_BUILD_ROOT", nil},
      {"MIX_BUILD_PATH", nil},
      {"MIX_DEPS_PATH", nil},
      {"MIX_LOCKFILE", nil},
      {"MIX_TARGET", nil}
    ]

    System.cmd(mix, args, cd: dir, env: base_env ++ env, stderr_to_stdout: true)
  end
end
