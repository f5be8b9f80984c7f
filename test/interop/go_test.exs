defmodule H2Flow.Interop.GoTest do
  # Go's net/http client (Debian golang-go, standard library only) against h2flow over TLS, with
  # the CA of H2Flow.TLS.self_signed/1 in RootCAs and ForceAttemptHTTP2: 100 concurrent 10 MiB
  # uploads (half without content-length) and 100 concurrent 10 MiB downloads, every body's
  # SHA-256 checked. The client (test/interop/clients/go) is built by the test, with GOCACHE
  # and GOPATH in a temporary directory and no module proxy.
  use ExUnit.Case, async: false

  alias H2Flow.Test.Interop

  @moduletag :interop
  @moduletag :tmp_dir
  @moduletag timeout: 600_000

  @n 100
  @size 10 * 1024 * 1024

  setup_all do
    go = System.find_executable("go") || flunk("go is not on PATH: install Debian's golang-go")
    dir = Path.join(System.tmp_dir!(), "h2flow-interop-go-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    binary = Path.join(dir, "interop")

    env = %{
      "GOCACHE" => Path.join(dir, "cache"),
      "GOPATH" => Path.join(dir, "gopath"),
      "GOPROXY" => "off",
      "GOFLAGS" => "-mod=mod",
      "GOTOOLCHAIN" => "local"
    }

    {ms, {output, status}} =
      Interop.timed(fn ->
        Interop.run!("go build", go, ["build", "-o", binary, "."],
          cd: Path.join(Interop.clients_dir(), "go"),
          env: env,
          timeout: 300_000
        )
      end)

    assert status == 0, "go build failed:\n#{output}"
    Interop.report("go build of the client: #{ms} ms")
    %{binary: binary}
  end

  for mode <- ["upload", "download"] do
    @mode mode
    test "100 concurrent 10 MiB #{mode}s over TLS: every hash matches, all over HTTP/2", ctx do
      s = Interop.start!(:tls, ctx.tmp_dir)
      args = ["-url", s.url, "-ca", s.ca, "-mode", @mode, "-n", "#{@n}", "-size", "#{@size}"]

      {result, log} =
        Interop.capture(s.server, fn ->
          Interop.result!(
            "go #{@mode}s",
            Interop.run!("go #{@mode}s", ctx.binary, args, timeout: 300_000)
          )
        end)

      stats = Interop.assert_clean!(s.server, log)

      Interop.report(
        "go #{@n} × 10 MiB #{@mode}s: #{result["ms"]} ms, " <>
          "#{stats.connections + stats.connections_closed} connection(s), " <>
          "peak #{stats.peak_open_streams} streams open"
      )

      assert result["failures"] == %{}
      assert result["ok"] == @n
      assert result["protos"] == %{"HTTP/2.0" => @n}
      assert stats.peak_open_streams <= 100

      if @mode == "upload",
        do: assert(stats.data_bytes_received == @n * @size),
        else: assert(stats.data_bytes_sent >= @n * @size)
    end
  end
end
