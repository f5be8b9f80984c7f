defmodule H2Flow.Interop.HttpxTest do
  # httpx with HTTP/2 (PyPI httpx[http2], python-hyper's h2 inside, asyncio): one client sends
  # 500 requests at once, mixed (GETs, downloads of 0 B to 1 MiB checked against x-sha256,
  # uploads of 0 B to 1 MiB checked against the server's hash, slow GETs), over h2c (prior
  # knowledge) and over TLS with the CA of H2Flow.TLS.self_signed/1 trusted. The client is
  # test/interop/clients/httpx_client.py.
  use ExUnit.Case, async: false

  alias H2Flow.Test.Interop

  @moduletag :interop
  @moduletag :tmp_dir
  @moduletag timeout: 300_000

  @n 500

  setup_all do
    python = System.find_executable("python3") || flunk("python3 is not on PATH")

    case System.cmd(python, ["-c", "import httpx, h2"], stderr_to_stdout: true) do
      {_, 0} -> :ok
      {out, _} -> flunk("httpx[http2] is missing (python3 -m pip install 'httpx[http2]'): #{out}")
    end

    %{python: python, script: Path.join(Interop.clients_dir(), "httpx_client.py")}
  end

  for transport <- [:tcp, :tls] do
    @transport transport
    test "500 concurrent mixed requests on one client over #{transport}: all answered over " <>
           "HTTP/2, every hash matches",
         ctx do
      s = Interop.start!(@transport, ctx.tmp_dir)

      {result, log} =
        Interop.capture(s.server, fn ->
          args = [ctx.script, s.url, s.ca || "-", "#{@n}"]
          Interop.result!("httpx", Interop.run!("httpx", ctx.python, args, timeout: 120_000))
        end)

      stats = Interop.assert_clean!(s.server, log)

      Interop.report(
        "httpx #{@n} mixed over #{@transport}: #{result["ms"]} ms, " <>
          "#{stats.connections + stats.connections_closed} connection(s), " <>
          "peak #{stats.peak_open_streams} streams open"
      )

      assert result["failures"] == %{}
      assert result["ok"] == @n
      assert result["versions"] == %{"HTTP/2" => @n}
      assert stats.handlers_started == @n
      assert stats.peak_open_streams <= 100
    end
  end
end
