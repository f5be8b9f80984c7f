defmodule H2Flow.Interop.GrpcTest do
  # gRPC (PyPI grpcio, BoringSSL inside) against an h2flow handler that speaks gRPC's framing
  # (H2Flow.Test.InteropHandler: length-prefixed messages echoed as they complete, grpc-status
  # in trailers), over h2c and over TLS with the CA of H2Flow.TLS.self_signed/1 as
  # root_certificates. BoringSSL rejected the certificate before issue 14 #5 was fixed. The
  # client is test/interop/clients/grpc_client.py (generic bytes methods, no protobuf).
  use ExUnit.Case, async: false

  alias H2Flow.Test.Interop

  @moduletag :interop
  @moduletag :tmp_dir
  @moduletag timeout: 300_000

  # {scenario, RPCs, messages echoed in all}
  @scenarios [
    {"large", "4 bidirectional streams of 8 messages of 1 MiB", 4, 32},
    {"small", "4 bidirectional streams of 1,000 messages of 100 B, one in flight at a time", 4,
     4000},
    {"concurrent", "150 concurrent bidirectional RPCs (limit 100: grpc queues the rest)", 150,
     600},
    {"keepalive", "a 5-second stream with keepalive pings every second", 1, 100}
  ]

  # The server's own PINGs (its round-trip probe): a burst of 8, then 2 a second at most
  # (PROBE_BURST and PROBES_PER_SECOND in scheduler.rs), whatever the traffic (issue 14 #7:
  # ~94 a second on a slowly arriving body).
  @probe_burst 8
  @probes_per_second 2

  setup_all do
    python = System.find_executable("python3") || flunk("python3 is not on PATH")

    case System.cmd(python, ["-c", "import grpc"], stderr_to_stdout: true) do
      {_, 0} -> :ok
      {out, _} -> flunk("grpcio is missing (python3 -m pip install grpcio): #{out}")
    end

    %{python: python, script: Path.join(Interop.clients_dir(), "grpc_client.py")}
  end

  for transport <- [:tcp, :tls], {scenario, what, rpcs, echoed} <- @scenarios do
    @transport transport
    @scenario scenario
    @rpcs rpcs
    @echoed echoed

    test "#{what}, over #{transport}: every message echoed intact, grpc-status 0", ctx do
      s = Interop.start!(@transport, ctx.tmp_dir)
      args = [ctx.script, "#{s.host}:#{s.port}", s.ca || "-", @scenario]

      {result, log} =
        Interop.capture(s.server, fn ->
          out = Interop.run!("grpc #{@scenario}", ctx.python, args, timeout: 120_000)
          Interop.result!("grpc #{@scenario}", out)
        end)

      stats = Interop.assert_clean!(s.server, log)

      Interop.report(
        "grpc #{@scenario} over #{@transport}: #{result["ms"]} ms, server PINGs sent " <>
          "#{stats.pings_sent}, PINGs received #{stats.frames_received.ping}, " <>
          "peak #{stats.peak_open_streams} streams open"
      )

      assert result["failures"] == %{}
      assert result["ok"] == @rpcs
      assert result["echoed"] == @echoed
      assert stats.handlers_started == @rpcs
      assert stats.peak_open_streams <= 100

      seconds = result["ms"] / 1000

      assert stats.pings_sent <= @probe_burst + @probes_per_second * (ceil(seconds) + 1),
             "the server sent #{stats.pings_sent} PINGs in #{seconds} s"

      if @scenario == "keepalive" do
        # grpc pinged about once a second (PINGs received beyond the ACKs of ours), and the
        # connection lived through them: the RPC completed.
        assert stats.frames_received.ping - stats.pings_sent >= 3
      end
    end
  end
end
