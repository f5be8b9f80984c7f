defmodule H2Flow.PlugReadmeTest do
  # The examples of the README's "Using with Plug and Phoenix" and of the Plug and Phoenix
  # adapters' moduledocs, run as written (the one change: port 4000 becomes port 0).
  use ExUnit.Case, async: false

  alias H2Flow.PhoenixAdapter

  @readme Path.expand("../../README.md", __DIR__)

  # The first fenced block after `marker` in `text`, and the fenced block that follows it.
  defp blocks_after(text, marker) do
    [_, rest] = String.split(text, marker, parts: 2)
    # Fence lines split the text: ["", block, between, next block, ...].
    parts = String.split(rest, ~r/^```\w*\n/m)
    {Enum.at(parts, 1), Enum.at(parts, 3)}
  end

  defp moduledoc_code(module) do
    {:docs_v1, _, _, _, %{"en" => doc}, _, _} = Code.fetch_docs(module)
    [_, code] = Regex.run(~r/\n\n((?:    .*\n|\n)+)/, doc)
    code |> String.split("\n") |> Enum.map_join("\n", &String.replace_prefix(&1, "    ", ""))
  end

  @tag :plug
  test "README: the Plug.Router example, and what its curl lines print" do
    {code, shell} = blocks_after(File.read!(@readme), "<!-- plug-example -->")
    assert code =~ "port: 4000"
    {_, binding} = Code.eval_string(String.replace(code, "port: 4000", "port: 0"))
    server = binding[:server]
    port = H2Flow.port(server)

    lines = for line <- String.split(shell, "\n", trim: true), do: String.split(line, "#")
    assert length(lines) == 2

    for [command, expected] <- lines do
      ["curl" | args] =
        command |> String.replace("localhost:4000", "127.0.0.1:#{port}") |> OptionParser.split()

      assert {out, 0} = System.cmd("curl", ["-sS" | args])
      assert out == String.trim(expected)
    end

    H2Flow.stop(server)
  end

  @tag :plug
  test "H2Flow.Plug.Adapter's moduledoc example" do
    {_, binding} = Code.eval_string(moduledoc_code(H2Flow.Plug.Adapter))
    port = H2Flow.port(binding[:server])
    args = ["-sS", "--http2-prior-knowledge", "-d", "hello", "http://127.0.0.1:#{port}/"]
    assert {"got 5 bytes over HTTP/2", 0} = System.cmd("curl", args)
    H2Flow.stop(binding[:server])
  end

  @tag :tmp_dir
  test "README and H2Flow.PhoenixAdapter: the endpoint configuration gives an h2c and a TLS " <>
         "server",
       %{tmp_dir: dir} do
    {readme, _} = blocks_after(File.read!(@readme), "<!-- phoenix-example -->")

    for code <- [readme, moduledoc_code(PhoenixAdapter)] do
      path = Path.join(dir, "config.exs")
      File.write!(path, "import Config\n" <> code)
      [my_app: [{endpoint, config}]] = Config.Reader.read!(path)
      specs = PhoenixAdapter.child_specs(endpoint, [otp_app: :h2flow] ++ config)

      assert [
               %{id: {^endpoint, :http}, start: {_, _, [:http, ^endpoint, http]}},
               %{id: {^endpoint, :https}, start: {_, _, [:https, ^endpoint, https]}}
             ] = specs

      assert http == [plug: endpoint, port: 4000, ip: {127, 0, 0, 1}]
      assert [plug: ^endpoint, port: 4443, transport: :tls, tls: tls] = https
      assert tls[:certfile] == Path.join(Application.app_dir(:h2flow), "priv/cert/selfsigned.pem")
    end
  end
end
