defmodule H2Flow.Interop.NodeTest do
  # Node.js's http2 module (nghttp2 inside) against h2flow, over h2c and over TLS with the CA
  # of H2Flow.TLS.self_signed/1 trusted (Node's `ca:` option): uploads of every size around one
  # stream window, with and without content-length, including fs.createReadStream(file).pipe(req)
  # (issue 14 #1); 1,000 concurrent GETs on one session; 2,000 connect/request/destroy cycles
  # (issue 14 #2). The client is test/interop/clients/node_h2.mjs.
  use ExUnit.Case, async: false

  alias H2Flow.Test.Interop

  @moduletag :interop
  @moduletag :tmp_dir
  @moduletag timeout: 900_000

  @mib 1024 * 1024
  # 256 KiB is one initial stream window (h2flow's default initial_stream_window).
  @sizes [0, 100_000, 262_143, 262_144, 262_145, 4 * @mib, 256 * @mib]
  # pipe-cl: createReadStream(file).pipe(req) with content-length; pipe: without;
  # end-cl: req.end(buffer) with content-length.
  @hows ["pipe-cl", "pipe", "end-cl"]

  setup_all do
    node = System.find_executable("node") || flunk("node is not on PATH: install Debian's nodejs")
    %{node: node, script: Path.join(Interop.clients_dir(), "node_h2.mjs")}
  end

  defp node!(ctx, what, args, timeout) do
    {output, status} =
      Interop.run!("node #{what}", ctx.node, [ctx.script | args], timeout: timeout)

    Interop.result!("node #{what}", {output, status})
  end

  for transport <- [:tcp, :tls] do
    @transport transport

    test "uploads over #{transport} of 0 B to 256 MiB, with and without content-length, " <>
           "piped from a file or written at once: the server reads every byte",
         ctx do
      {result, log, %{server: server}} =
        with_server(ctx, @transport, [], fn s ->
          sizes = Enum.join(@sizes, ",")
          # Each upload gets 10 s, plus 1 s per 16 MiB, before the client calls it a stall.
          node!(
            ctx,
            "uploads",
            ["uploads", s.url, s.ca || "-", ctx.tmp_dir, sizes, Enum.join(@hows, ","), "10000"],
            600_000
          )
        end)

      results = result["results"]
      assert length(results) == length(@sizes) * length(@hows)

      for %{"size" => size, "how" => how, "ms" => ms, "ok" => true} <- results,
          size == 256 * @mib do
        Interop.report("node #{@transport} upload of 256 MiB (#{how}): #{ms} ms")
      end

      failed = for %{"ok" => false} = r <- results, do: r

      assert failed == [],
             "#{length(failed)} of #{length(results)} uploads failed:\n" <>
               Enum.map_join(failed, "\n", &inspect/1)

      stats = Interop.assert_clean!(server, log)
      total = Enum.sum(@sizes) * length(@hows)
      assert stats.data_bytes_received == total
    end

    test "1,000 concurrent GETs on one session over #{transport}: all answered, at most 100 " <>
           "streams open at once, none refused",
         ctx do
      {result, log, %{server: server}} =
        with_server(ctx, @transport, [], fn s ->
          node!(
            ctx,
            "concurrent",
            ["concurrent", s.url, s.ca || "-", "1000", "/slow?ms=20", "30000"],
            120_000
          )
        end)

      Interop.report("node #{@transport} 1,000 concurrent GETs: #{inspect(result)}")
      assert result["outcomes"] == %{"status 200" => 1000}
      assert result["remoteMax"] == 100
      stats = Interop.assert_clean!(server, log)
      assert stats.streams_opened == 1000
      # Node kept to the limit (remoteMax) and used it: the server saw at most that many at
      # once, and many (exactly 100 unless the first answers beat the last requests).
      assert stats.peak_open_streams in 50..100
      assert stats.streams_refused == 0
    end

    test "2,000 connect/request/destroy cycles over #{transport}: destroy on connect, " <>
           "mid-response and after the response; no crash, nothing logged",
         ctx do
      {result, log, %{server: server} = s} =
        with_server(ctx, @transport, [], fn s ->
          node!(ctx, "cycles", ["cycles", s.url, s.ca || "-", "2000", "10", "10000"], 300_000)
        end)

      loud = Interop.loud_lines(log)

      Interop.report(
        "node #{@transport} 2,000 connect/destroy cycles: #{result["ms"]} ms, " <>
          "#{loud} log lines at :warning or above, outcomes #{inspect(result["outcomes"])}"
      )

      if @transport == :tls, do: Interop.refute_key_material!(log, s.tls)

      assert result["outcomes"] == %{
               "destroy-on-connect: ok" => 667,
               "destroy-mid-response: ok" => 667,
               "complete: ok" => 666
             }

      stats = Interop.assert_clean!(server, log)
      # Every connection is gone once the client has: nothing lingers.
      H2Flow.Test.ServerHelpers.eventually(
        fn -> H2Flow.stats(server).connections == 0 end,
        10_000
      )

      assert stats.handler_crashes == 0
    end
  end

  # Starts a server, runs `fun` with it while capturing the log; returns what `fun` returned,
  # the log, and the server's map (see Interop.start!/3).
  defp with_server(ctx, transport, opts, fun) do
    s = Interop.start!(transport, ctx.tmp_dir, opts)
    {result, log} = Interop.capture(s.server, fn -> fun.(s) end)
    {result, log, s}
  end
end
