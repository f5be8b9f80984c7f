defmodule H2Flow.ClientTest do
  # H2Flow.Client against h2flow's own server over real sockets: requests and responses, bodies
  # of 0 B to 256 MiB with hashes both ways, h2c and TLS, many requests from many processes.
  use ExUnit.Case, async: true

  alias H2Flow.Client
  alias H2Flow.Test.{ClientHandler, ClientHelpers}

  @moduletag timeout: 180_000

  import H2Flow.Test.ServerHelpers, only: [eventually: 1]

  setup do
    server = H2Flow.Test.server!(handler: ClientHandler)
    {:ok, server: server, client: H2Flow.Test.connect!(server)}
  end

  test "a GET, a POST, headers, trailers", %{client: client} do
    assert {:ok, %{status: 200, body: "slept", trailers: []} = resp} =
             Client.request(client, "GET", "/sleep/0")

    assert {"date", _} = List.keyfind(resp.headers, "date", 0)

    assert {:ok, %{status: 200, body: "hello", headers: headers}} =
             Client.request(client, "POST", "/echo", [{"Content-Type", "text/plain"}], "hello")

    assert {"x-method", "POST"} in headers
    assert {:ok, %{status: 404}} = Client.request(client, "GET", "/nothing")

    assert {:ok, %{body: "body", trailers: [{"x-sum", "42"}]}} =
             Client.request(client, "GET", "/trailers")

    # iodata bodies and HEAD (its content-length describes the GET's body).
    assert {:ok, %{body: "abc"}} = Client.request(client, "PUT", "/echo", [], ["a", ["b" | "c"]])
    assert {:ok, %{status: 200, body: ""} = head} = Client.request(client, "HEAD", "/bytes/100")
    assert {"content-length", "100"} in head.headers
  end

  test "bodies of 0 B to 16 MiB, both ways, with hashes", %{client: client} do
    for n <- [0, 1, 16_383, 16_384, 16_385, 65_536, 1_000_000, 16_777_216] do
      body = n |> ClientHelpers.pattern() |> Enum.join()
      hash = ClientHelpers.pattern_hash(n)
      assert ClientHelpers.sha256(body) == hash

      assert {:ok, %{status: 200, body: ^hash} = resp} =
               Client.request(client, "POST", "/sha256", [], body)

      assert {"x-size", Integer.to_string(n)} in resp.headers

      assert {:ok, %{status: 200, body: down}} =
               Client.request(client, "GET", "/bytes/#{n}", [], nil, max_body: n)

      assert byte_size(down) == n and ClientHelpers.sha256(down) == hash

      # The same from an enumerable, and the response streamed.
      {:ok, resp} = Client.stream(client, "POST", "/sha256", [], ClientHelpers.pattern(n))
      assert {^hash, _} = ClientHelpers.collect(resp)
      {:ok, resp} = Client.stream(client, "GET", "/bytes/#{n}")
      assert {^n, ^hash, _, %{done: true}} = ClientHelpers.read_all(resp)
    end
  end

  @tag :large
  test "256 MiB up and down, with hashes; WINDOW_UPDATEs stay few", %{client: client} do
    n = 256 * 1024 * 1024
    hash = ClientHelpers.pattern_hash(n)

    {:ok, resp} = Client.stream(client, "PUT", "/sha256", [], ClientHelpers.pattern(n))
    assert {^hash, _} = ClientHelpers.collect(resp)

    {:ok, resp} = Client.stream(client, "GET", "/bytes/#{n}")
    assert {^n, ^hash, pieces, _} = ClientHelpers.read_all(resp)
    assert pieces < 20_000

    # The whole-body form, read as it arrives.
    assert {:ok, %{body: body}} =
             Client.request(client, "GET", "/bytes/#{n}", [], nil, max_body: n)

    assert ClientHelpers.sha256(body) == hash

    stats = Client.stats(client)
    assert stats.data_bytes_received >= 2 * n
    wu = stats.window_update_frames.connection + stats.window_update_frames.stream
    assert wu <= 200, "#{wu} WINDOW_UPDATE frames for 512 MiB of responses"
  end

  test "h2 over TLS, with the server's certificate verified" do
    client = H2Flow.Test.client!(handler: ClientHandler, transport: :tls)
    assert {:ok, %{status: 200, body: "hi"}} = Client.request(client, "POST", "/echo", [], "hi")

    # Without the CA that signed it, the certificate is refused.
    server = H2Flow.Test.server!(handler: ClientHandler, transport: :tls)
    other_ca = H2Flow.TLS.self_signed()[:cacerts]
    assert {:error, {:tls_alert, _}} = Client.connect(H2Flow.Test.url(server), cacerts: other_ca)

    # With verification off, it connects.
    {:ok, c} = Client.connect(H2Flow.Test.url(server), tls: [verify: :verify_none])
    assert {:ok, %{status: 404}} = Client.request(c, "GET", "/")
    :ok = Client.close(c)
  end

  test "many processes share one connection", %{client: client} do
    tasks =
      for i <- 1..50 do
        Task.async(fn ->
          for j <- 1..20 do
            body = "#{i}-#{j}"
            {:ok, %{status: 200, body: ^body}} = Client.request(client, "POST", "/echo", [], body)
          end
        end)
      end

    Enum.each(tasks, &Task.await(&1, 30_000))
    stats = Client.stats(client)
    assert stats.requests == 1_000
    assert stats.streams_opened == 1_000
  end

  test "connect errors are returned" do
    # A port bound to a socket that never listens: refused, and no other test can take it.
    {:ok, socket} = :socket.open(:inet, :stream, :tcp)
    :ok = :socket.bind(socket, %{family: :inet, addr: {127, 0, 0, 1}, port: 0})
    {:ok, %{port: port}} = :socket.sockname(socket)
    assert {:error, :econnrefused} = Client.connect("http://127.0.0.1:#{port}")
    assert_raise ArgumentError, fn -> Client.connect("ftp://x") end
    assert_raise ArgumentError, fn -> Client.connect("http://x", bogus: 1) end

    # A server that does not speak HTTP/2 first: no SETTINGS within :connect_timeout.
    {:ok, lsock} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(lsock)
    assert {:error, :timeout} = Client.connect("http://127.0.0.1:#{port}", connect_timeout: 200)
    :gen_tcp.close(lsock)
  end

  test "invalid request headers raise in the caller; the connection carries on",
       %{client: client} do
    assert_raise ArgumentError, ~r/connection-specific/, fn ->
      Client.request(client, "GET", "/", [{"connection", "close"}])
    end

    assert_raise ArgumentError, ~r/8.3.1/, fn -> Client.request(client, "GET", "") end
    assert {:ok, %{status: 200}} = Client.request(client, "GET", "/sleep/0")
  end

  test "close/2 lets requests in flight finish and refuses new ones", %{server: s, client: client} do
    task = Task.async(fn -> Client.request(client, "GET", "/sleep/300") end)
    eventually(fn -> H2Flow.stats(s).open_streams == 1 end)
    closing = Task.async(fn -> Client.close(client) end)
    assert {:ok, %{status: 200}} = Task.await(task)
    assert :ok = Task.await(closing)
    assert {:error, :closed} = Client.request(client, "GET", "/sleep/0")
  end
end
