defmodule H2Flow.Interop.HTTP1Test do
  # Real HTTP/1.1 clients against h2flow's listeners (the h2c port and the TLS port, ALPN
  # http/1.1 or none), the handler of the interop suite (H2Flow.Test.InteropHandler): curl
  # --http1.1 (GET; POST with content-length and chunked; Expect: 100-continue; a 1 GiB upload
  # from standard input, -T -, whose SHA-256 the server computes), curl --http2 upgrading an
  # h2c connection (Upgrade: h2c), Python's http.client, httpx with HTTP/1.1 only, Node's
  # http/https modules and h2load --h1. Every run ends with the suite's checks (no defence, no
  # refusal, no crash, nothing logged at :warning or above).
  use ExUnit.Case, async: false

  alias H2Flow.Test.Interop

  @moduletag :interop
  @moduletag :tmp_dir
  @moduletag timeout: 600_000

  @gib 1024 * 1024 * 1024

  setup_all do
    %{
      curl: System.find_executable("curl") || flunk("curl is not on PATH"),
      python: System.find_executable("python3") || flunk("python3 is not on PATH"),
      node: System.find_executable("node") || flunk("node is not on PATH"),
      h2load: System.find_executable("h2load") || flunk("h2load is not on PATH")
    }
  end

  defp tls_args(%{transport: :tls, ca: ca}), do: ["--cacert", ca]
  defp tls_args(_s), do: []

  defp clean!(s, log) do
    stats = Interop.assert_clean!(s.server, log)
    assert stats.http1.rejected_total == 0, inspect(stats.http1.rejected)
    stats
  end

  defp sha256(data), do: :crypto.hash(:sha256, data) |> Base.encode16(case: :lower)

  for transport <- [:tcp, :tls] do
    @transport transport

    test "curl --http1.1 over #{transport}: GET, POST with content-length and chunked, " <>
           "Expect: 100-continue",
         ctx do
      s = Interop.start!(@transport, ctx.tmp_dir)
      file = Path.join(ctx.tmp_dir, "body")
      body = :crypto.strong_rand_bytes(3_000_000)
      File.write!(file, body)
      want = "#{byte_size(body)} #{sha256(body)}"
      base = ["-sS", "--max-time", "60", "--http1.1", "-w", " %{http_version}"] ++ tls_args(s)

      {results, log} =
        Interop.capture(s.server, fn ->
          for {what, args} <- [
                {"GET", ["#{s.url}/hello"]},
                {"POST content-length", ["--data-binary", "@#{file}", "#{s.url}/upload"]},
                {"POST chunked",
                 [
                   "-H",
                   "transfer-encoding: chunked",
                   "--data-binary",
                   "@#{file}",
                   "#{s.url}/upload"
                 ]},
                {"Expect: 100-continue",
                 [
                   "-v",
                   "-H",
                   "expect: 100-continue",
                   "--data-binary",
                   "@#{file}",
                   "#{s.url}/upload"
                 ]}
              ] do
            {what, Interop.run!("curl #{what}", ctx.curl, base ++ args)}
          end
        end)

      assert {"GET", {"hello /hello 1.1", 0}} = Enum.at(results, 0)
      assert {"POST content-length", {out, 0}} = Enum.at(results, 1)
      assert out == want <> " 1.1"
      assert {"POST chunked", {out, 0}} = Enum.at(results, 2)
      assert out == want <> " 1.1"
      assert {"Expect: 100-continue", {out, 0}} = Enum.at(results, 3)
      assert out =~ "< HTTP/1.1 100 Continue"
      assert String.ends_with?(out, want <> " 1.1")
      stats = clean!(s, log)
      assert stats.http1.continues_sent >= 1
      assert stats.requests[:"HTTP/1.1"] == 4
    end
  end

  test "curl --http1.1 -T -: 1 GiB from standard input, chunked; the server hashes every byte",
       ctx do
    s = Interop.start!(:tcp, ctx.tmp_dir)
    # The same bytes twice: once hashed here, once uploaded.
    bytes = "yes h2flow-http1-upload 2>/dev/null | head -c #{@gib}"
    {sum, 0} = System.cmd("sh", ["-c", "#{bytes} | sha256sum"])
    [sha, _] = String.split(sum, " ", parts: 2)
    script = "#{bytes} | #{ctx.curl} -sS --max-time 300 --http1.1 -T - #{s.url}/upload"

    {{ms, {out, status}}, log} =
      Interop.capture(s.server, fn ->
        Interop.timed(fn ->
          Interop.run!("curl -T - 1 GiB", "sh", ["-c", script], timeout: 400_000)
        end)
      end)

    assert {out, status} == {"#{@gib} #{sha}", 0}
    stats = clean!(s, log)

    Interop.report(
      "curl --http1.1 -T - of 1 GiB: #{ms} ms, peak held #{stats.http1.peak_buffered_bytes} bytes"
    )

    # What no read asked for stayed within the engine's bound plus the reads in flight.
    assert stats.http1.peak_buffered_bytes <= H2Flow.TestBounds.http1_held()
  end

  test "curl --http2 on the h2c port: Upgrade: h2c, then HTTP/2", ctx do
    s = Interop.start!(:tcp, ctx.tmp_dir)
    n = 1_000_000

    args = [
      "-sS",
      "--max-time",
      "30",
      "--http2",
      "-w",
      "\n%{http_version}",
      "#{s.url}/bytes?n=#{n}"
    ]

    {{out, 0}, log} =
      Interop.capture(s.server, fn -> Interop.run!("curl --http2 (upgrade)", ctx.curl, args) end)

    [body, version] =
      out
      |> :binary.split("\n", [:global])
      |> then(&[Enum.join(Enum.drop(&1, -1), "\n"), List.last(&1)])

    assert version == "2"
    assert byte_size(body) == n
    assert sha256(body) == H2Flow.Test.InteropHandler.pattern_sha256(n)
    stats = clean!(s, log)
    assert stats.http1.upgrades == 1
    assert %{"HTTP/2": 1, "HTTP/1.1": 0} = stats.requests
  end

  for transport <- [:tcp, :tls] do
    @transport transport

    test "Python http.client over #{transport}: one keep-alive connection, uploads with " <>
           "content-length and chunked",
         ctx do
      s = Interop.start!(@transport, ctx.tmp_dir)
      script = Path.join(Interop.clients_dir(), "http_client.py")
      host = if @transport == :tls, do: "localhost", else: "127.0.0.1"
      args = [script, host, "#{s.port}", s.ca || "-", "24"]

      {result, log} =
        Interop.capture(s.server, fn ->
          Interop.result!("http.client", Interop.run!("http.client", ctx.python, args))
        end)

      assert result["failures"] == %{}
      assert result["ok"] == 24 * 4
      assert result["versions"] == %{"11" => 24 * 4}
      assert result["connections"] == 1
      stats = clean!(s, log)
      assert stats.connections_closed + stats.connections == 1
    end

    test "httpx with HTTP/1.1 only over #{transport}: 300 concurrent mixed requests", ctx do
      s = Interop.start!(@transport, ctx.tmp_dir)
      script = Path.join(Interop.clients_dir(), "httpx_client.py")

      {result, log} =
        Interop.capture(s.server, fn ->
          args = [script, s.url, s.ca || "-", "300", "http1"]
          Interop.result!("httpx", Interop.run!("httpx http1", ctx.python, args))
        end)

      assert result["failures"] == %{}
      assert result["ok"] == 300
      assert result["versions"] == %{"HTTP/1.1" => 300}
      stats = clean!(s, log)
      assert stats.requests[:"HTTP/1.1"] == 300
    end

    test "Node's #{if transport == :tls, do: "https", else: "http"} module over #{transport}: " <>
           "400 requests on a keep-alive agent",
         ctx do
      s = Interop.start!(@transport, ctx.tmp_dir)
      script = Path.join(Interop.clients_dir(), "node_http1.mjs")

      {result, log} =
        Interop.capture(s.server, fn ->
          args = [script, s.url, s.ca || "-", "400", "60000"]
          Interop.result!("node http", Interop.run!("node http", ctx.node, args))
        end)

      assert result["failures"] == %{}
      assert result["ok"] == 400
      assert result["versions"] == %{"1.1" => 400}
      assert result["sockets"] <= 8
      stats = clean!(s, log)
      assert stats.connections + stats.connections_closed == result["sockets"]
    end
  end

  test "h2load --h1: GET and 16 KiB POSTs, 0 failed", ctx do
    s = Interop.start!(:tcp, ctx.tmp_dir)
    post = Path.join(ctx.tmp_dir, "post")
    File.write!(post, :binary.copy("p", 16_384))

    {results, log} =
      Interop.capture(s.server, fn ->
        for {what, extra, path} <- [{"GET", [], "/hello"}, {"POST", ["-d", post], "/upload"}] do
          args = ["--h1", "-n", "20000", "-c", "20"] ++ extra ++ ["#{s.url}#{path}"]
          {what, Interop.run!("h2load --h1 #{what}", ctx.h2load, args)}
        end
      end)

    for {what, {out, status}} <- results do
      assert status == 0, out

      assert out =~ "requests: 20000 total, 20000 started, 20000 done, 20000 succeeded, 0 failed",
             "#{what}: #{out}"

      [line] = Regex.run(~r/finished in .*req\/s/, out)
      Interop.report("h2load --h1 #{what}: #{line}")
    end

    stats = clean!(s, log)
    assert stats.requests[:"HTTP/1.1"] == 40_000
  end
end
