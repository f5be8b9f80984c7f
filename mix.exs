# The compiler that builds the Rust NIF has to exist before lib/ is compiled, so it lives
# outside lib/ and is loaded here (also when h2flow is a path or git dependency).
Code.require_file("mix/tasks/compile.h2flow_native.ex", __DIR__)

defmodule H2Flow.MixProject do
  use Mix.Project

  def project do
    [
      app: :h2flow,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:h2flow_native] ++ Mix.compilers(),
      elixirc_paths: elixirc_paths(Mix.env()),
      # No deps at all: builds must work without Hex.
      deps: [],
      aliases: aliases(),
      # Read by Elixir 1.14; 1.15+ reads cli/0 instead and then ignores this key.
      preferred_cli_env: preferred_envs()
    ]
  end

  def cli, do: [preferred_envs: preferred_envs()]

  def application do
    [extra_applications: [:logger, :crypto, :ssl, :public_key]]
  end

  # Benchmark code (bench/lib: `mix h2flow.bench` and its handlers) is compiled in :bench only,
  # so it never ships in an application's build.
  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(:bench), do: ["lib", "bench/lib"]
  defp elixirc_paths(_), do: ["lib"]

  # :bench builds the NIF with cargo's release profile, like :prod (see the compiler in mix/).
  defp preferred_envs,
    do: ["test.all": :test, "h2flow.bench": :bench, "h2flow.bench.plug": :bench]

  defp aliases do
    ["test.all": [&cargo_test/1, "test"]]
  end

  defp cargo_test(_args) do
    cargo = Mix.Tasks.Compile.H2flowNative.cargo!()
    Mix.shell().info("Running cargo test --workspace")

    {_, status} =
      System.cmd(cargo, ["test", "--workspace"],
        cd: __DIR__,
        stderr_to_stdout: true,
        into: IO.stream(:stdio, :line)
      )

    if status != 0, do: Mix.raise("cargo test --workspace failed with exit status #{status}")
  end
end
