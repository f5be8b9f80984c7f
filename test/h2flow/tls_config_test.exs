defmodule H2Flow.TLSConfigTest do
  # TLS configuration fails fast: start_link returns {:error, {:tls_config, option, why}}
  # naming the file or option, before listening. A handshake that fails, however it fails,
  # closes its socket (no CLOSE-WAIT left), is counted in :tls_handshake_failures and logged
  # once, at :debug.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.{FunHandler, H2Client}

  @moduletag :tmp_dir

  defp tls_opts(tls, opts) do
    [handler: FunHandler, handler_opts: &Req.reply(200, %{}, "ok", &1), port: 0] ++
      [ip: {127, 0, 0, 1}, transport: :tls, tls: tls] ++ opts
  end

  defp tls_start(tls, opts \\ []), do: H2Flow.start_link(tls_opts(tls, opts))

  defp tls_server!(tls, opts), do: start_supervised!({H2Flow, tls_opts(tls, opts)})

  # PEM files of a certificate and its key (H2Flow.TLS.self_signed/1), in `dir`.
  defp pem_files(dir, name) do
    tls = H2Flow.TLS.self_signed()
    {type, der} = tls[:key]
    certfile = Path.join(dir, "#{name}_cert.pem")
    keyfile = Path.join(dir, "#{name}_key.pem")
    File.write!(certfile, :public_key.pem_encode([{:Certificate, tls[:cert], :not_encrypted}]))
    File.write!(keyfile, :public_key.pem_encode([{type, der, :not_encrypted}]))
    {certfile, keyfile}
  end

  # A port nothing listens on: bound to a socket that never listens (and so refuses
  # connections), held for the rest of the test so that no other test's listener takes it.
  defp free_port do
    {:ok, socket} = :socket.open(:inet, :stream, :tcp)
    :ok = :socket.bind(socket, %{family: :inet, addr: {127, 0, 0, 1}, port: 0})
    {:ok, %{port: port}} = :socket.sockname(socket)
    port
  end

  describe "start_link/1 checks the certificate and key before listening" do
    test "a file that is missing, unreadable or not what it should be", %{tmp_dir: dir} do
      {certfile, keyfile} = pem_files(dir, "a")
      garbage = Path.join(dir, "garbage.pem")
      File.write!(garbage, "not a PEM file")

      for {tls, option, why} <- [
            {[certfile: "/nonexistent.pem", keyfile: keyfile], :certfile,
             "cannot read /nonexistent.pem: no such file or directory"},
            {[certfile: certfile, keyfile: "/nonexistent/key.pem"], :keyfile,
             "cannot read /nonexistent/key.pem: no such file or directory"},
            {[certfile: garbage, keyfile: keyfile], :certfile, "#{garbage} holds no Certificate"},
            {[certfile: certfile, keyfile: certfile], :keyfile,
             "#{certfile} holds no private key"},
            {[certfile: certfile], :certfile, "#{certfile} holds no private key"},
            {[certfile: certfile, keyfile: keyfile, cacertfile: "/nonexistent/ca.pem"],
             :cacertfile, "cannot read /nonexistent/ca.pem"},
            {[keyfile: keyfile], :cert, "a TLS server needs a certificate"}
          ] do
        port = free_port()
        assert {:error, {:tls_config, ^option, message}} = tls_start(tls, port: port)
        assert message =~ why
        # Nothing listens.
        assert {:error, :econnrefused} = :gen_tcp.connect(~c"127.0.0.1", port, [])
      end
    end

    test "a key that does not match the certificate, as files or as DER", %{tmp_dir: dir} do
      {certfile, _} = pem_files(dir, "a")
      {_, other_keyfile} = pem_files(dir, "b")

      assert {:error, {:tls_config, :keyfile, message}} =
               tls_start(certfile: certfile, keyfile: other_keyfile)

      assert message =~ "does not match the certificate"

      a = H2Flow.TLS.self_signed()
      b = H2Flow.TLS.self_signed()

      assert {:error, {:tls_config, :key, _}} = tls_start(cert: a[:cert], key: b[:key])
      assert {:error, {:tls_config, :cert, _}} = tls_start(cert: "not DER", key: a[:key])

      assert {:error, {:tls_config, :key, message}} =
               tls_start(cert: a[:cert], key: {:ECPrivateKey, "secret bytes"})

      # Key material is never in the message.
      refute message =~ "secret bytes"
    end

    test "good files: the server starts and serves h2", %{tmp_dir: dir} do
      {certfile, keyfile} = pem_files(dir, "good")
      assert {:ok, server} = tls_start(certfile: certfile, keyfile: keyfile)
      url = "https://localhost:#{H2Flow.port(server)}/"
      assert {"ok 2", 0} = System.cmd("curl", ["-sSk", "--http2", "-w", " %{http_version}", url])
      H2Flow.stop(server)
    end
  end

  describe "failed handshakes" do
    test "each closes its socket, is counted and is logged once at :debug" do
      tls = H2Flow.TLS.self_signed()
      server = tls_server!(tls, preface_timeout: 300)
      port = H2Flow.port(server)

      tcp = fn ->
        {:ok, s} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false])
        s
      end

      client_port = fn s ->
        {:ok, {_, p}} = :inet.sockname(s)
        p
      end

      {ports, log} =
        with_log([level: :debug], fn ->
          # Plain HTTP/1.1 on the TLS port: the server's alert, then it closes.
          plain = tcp.()
          plain_port = client_port.(plain)
          :ok = :gen_tcp.send(plain, "GET / HTTP/1.1\r\nhost: x\r\n\r\n")
          assert {:error, :closed} = recv_until_closed(plain)

          # A client that connects and goes away at once.
          gone = tcp.()
          gone_port = client_port.(gone)
          :gen_tcp.close(gone)

          # A client that says nothing: the handshake times out (preface_timeout).
          silent = tcp.()
          silent_port = client_port.(silent)
          assert {:error, :closed} = recv_until_closed(silent)

          # A TLS client that rejects the server's certificate (an unknown CA).
          rejecting = tcp.()
          rejecting_port = client_port.(rejecting)

          assert {:error, _} =
                   :ssl.connect(
                     rejecting,
                     [verify: :verify_peer, cacerts: H2Flow.TLS.self_signed()[:cacerts]],
                     5_000
                   )

          eventually(fn -> stat(server, :tls_handshake_failures) == 4 end)
          [plain_port, gone_port, silent_port, rejecting_port]
        end)

      for p <- ports do
        lines = Regex.scan(~r/h2flow: handshake with 127\.0\.0\.1:#{p} failed/, log)
        assert length(lines) == 1, "port #{p}: #{inspect(log)}"
      end

      # :ssl says nothing of its own (its alerts are logged by the connection, once).
      refute log =~ "TLS :server"

      # No socket of the server is left but its listener: nothing in CLOSE-WAIT.
      eventually(fn -> server_sockets(port) == [] end)
      {out, 0} = System.cmd("ss", ["-tanH", "state", "close-wait", "sport = :#{port}"])
      assert out == ""

      assert %{tls_handshake_failures: 4, connections: 0, connections_closed: 4} =
               H2Flow.stats(server)
    end

    test "a client without ALPN gets the plain-text answer without HTTP/1.1; not a TLS failure" do
      server = tls_server!(H2Flow.TLS.self_signed(), http_versions: [:http2])

      {:ok, s} =
        :ssl.connect(
          ~c"127.0.0.1",
          H2Flow.port(server),
          [:binary, verify: :verify_none, active: false],
          5_000
        )

      assert {:ok, "HTTP/1.1 505" <> _} = :ssl.recv(s, 0, 5_000)
      eventually(fn -> stat(server, :connections_closed) == 1 end)
      assert stat(server, :tls_handshake_failures) == 0
      conn = connect!(H2Flow.port(server), [], tls: true)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/")
      assert {:ok, _, %{status: 200, body: "ok"}} = H2Client.read_response(conn, id)
    end
  end

  defp recv_until_closed(socket) do
    case :gen_tcp.recv(socket, 0, 5_000) do
      {:ok, _} -> recv_until_closed(socket)
      error -> error
    end
  end

  # The server's accepted sockets: local port `port`, with a peer.
  defp server_sockets(port) do
    for p <- :erlang.ports(),
        :erlang.port_info(p, :name) == {:name, ~c"tcp_inet"},
        match?({:ok, {_, ^port}}, :inet.sockname(p)),
        match?({:ok, _}, :inet.peername(p)),
        do: p
  end
end
