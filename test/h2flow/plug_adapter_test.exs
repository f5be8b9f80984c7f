defmodule H2Flow.PlugAdapterTest do
  # H2Flow.Plug.Adapter under a real Plug (PLUG_EBIN, see test_helper.exs), every callback over
  # real sockets with curl and the raw client; errors the way Plug's adapters answer them.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import H2Flow.Test.ServerHelpers

  alias H2Flow.Test.H2Client

  @moduletag :plug
  @moduletag :tmp_dir

  defmodule App do
    @moduledoc false
    # The test's plug: one route per callback; `opts` is the test process.
    alias Plug.Conn

    # Without PLUG_EBIN these tests are excluded, and Plug's modules are not there to check.
    @compile {:no_warn_undefined, Plug.Conn}

    def init(test), do: test

    def call(conn, test), do: route(conn.path_info, conn, test)

    defp route(["conn"], conn, test) do
      data = {Conn.get_peer_data(conn), Conn.get_sock_data(conn), Conn.get_ssl_data(conn)}
      send(test, {:conn, Map.take(conn, fields()), data, Conn.get_http_protocol(conn)})
      Conn.send_resp(conn, 200, "ok")
    end

    defp route(["resp", status], conn, _test) do
      conn
      |> Conn.put_resp_header("x-plug", "yes")
      |> Conn.put_resp_header("connection", "close")
      |> Conn.send_resp(String.to_integer(status), "body of #{status}")
    end

    defp route(["set"], conn, _test), do: Conn.resp(conn, 202, "set, not sent")
    defp route(["file"], conn, _test), do: send_file(conn, Conn.fetch_query_params(conn).params)

    defp route(["chunked"], conn, _test) do
      conn = Conn.send_chunked(conn, 200)
      {:ok, conn} = Conn.chunk(conn, "one ")
      {:ok, conn} = Conn.chunk(conn, "")
      {:ok, conn} = Conn.chunk(conn, ["two", " ", "three"])
      conn
    end

    defp route(["inform"], conn, _test) do
      conn
      |> Conn.inform(103, link: "</app.css>; rel=preload; as=style")
      |> Conn.send_resp(200, "informed")
    end

    defp route(["push"], conn, _test) do
      {adapter, payload} = conn.adapter
      Conn.send_resp(conn, 200, inspect(adapter.push(payload, "/app.css", [])))
    end

    defp route(["upgrade"], conn, _test), do: Conn.upgrade_adapter(conn, :websocket, {App, []})

    defp send_file(conn, %{"path" => path} = params) do
      offset = String.to_integer(Map.get(params, "offset", "0"))
      length = if l = params["length"], do: String.to_integer(l), else: :all
      Conn.send_file(conn, 200, path, offset, length)
    end

    defp fields do
      [:scheme, :host, :port, :remote_ip, :method, :request_path, :path_info] ++
        [:query_string, :req_headers]
    end
  end

  defp start!(opts \\ []) do
    server =
      start_supervised!({H2Flow, [plug: {App, self()}, port: 0, ip: {127, 0, 0, 1}] ++ opts})

    {server, H2Flow.port(server)}
  end

  # Returns {exit status, headers and body as curl prints them with -i}.
  defp curl(url, args \\ []) do
    System.cmd("curl", ["-sS", "-i", "--http2-prior-knowledge"] ++ args ++ [url],
      stderr_to_stdout: true
    )
  end

  describe "the conn" do
    test "scheme, host, port, remote_ip, method, path, query string and request fields (h2c)" do
      {_server, port} = start!()
      headers = [{"x-one", "1"}, {"cookie", "a=1"}, {"cookie", "b=2"}, {"x-two", "2"}]
      conn = connect!(port)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/conn?x=1&y=2", headers)
      assert {:ok, _conn, %{status: 200, body: "ok"}} = H2Client.read_response(conn, id)

      assert_receive {:conn, fields, {peer, sock, ssl}, :"HTTP/2"}
      {ip, client_port} = {{127, 0, 0, 1}, peer.port}

      assert %{
               scheme: :http,
               host: "127.0.0.1",
               port: ^port,
               remote_ip: ^ip,
               method: "GET",
               request_path: "/conn",
               path_info: ["conn"],
               query_string: "x=1&y=2",
               req_headers: req_headers
             } = fields

      # Lower-case names; cookie crumbs joined with "; " (RFC 9113 8.2.3).
      assert Enum.sort(req_headers) ==
               [{"cookie", "a=1; b=2"}, {"x-one", "1"}, {"x-two", "2"}]

      assert %{address: ^ip, port: ^client_port, ssl_cert: nil} = peer
      assert client_port != port
      assert sock == %{address: ip, port: port}
      assert ssl == nil
    end

    test "over HTTP/1.1 (and 1.0) on the same port: get_http_protocol follows the request" do
      {_server, port} = start!()

      for {flag, version} <- [{"--http1.1", :"HTTP/1.1"}, {"--http1.0", :"HTTP/1.0"}] do
        {out, 0} =
          System.cmd("curl", ["-sS", flag, "-H", "x-one: 1", "http://127.0.0.1:#{port}/conn?a=b"])

        assert out == "ok"
        assert_receive {:conn, fields, _data, ^version}
        assert %{method: "GET", query_string: "a=b", host: "127.0.0.1", port: ^port} = fields
        assert {"x-one", "1"} in fields.req_headers
      end
    end

    test "over TLS: https, the client's certificate in get_peer_data, the session in " <>
           "get_ssl_data",
         %{tmp_dir: dir} do
      key = [{:key, {:namedCurve, :secp256r1}}, {:digest, :sha256}]
      names = {:Extension, {2, 5, 29, 17}, false, [{:dNSName, ~c"localhost"}]}

      %{server_config: server, client_config: client} =
        :public_key.pkix_test_data(%{
          server_chain: %{root: key, peer: [{:extensions, [names]} | key]},
          client_chain: %{root: key, peer: key}
        })

      {key_type, key_der} = client[:key]

      File.write!(
        Path.join(dir, "cert.pem"),
        pem([{:Certificate, client[:cert], :not_encrypted}])
      )

      File.write!(Path.join(dir, "key.pem"), pem([{key_type, key_der, :not_encrypted}]))

      tls =
        Keyword.take(server, [:cert, :key, :cacerts]) ++
          [verify: :verify_peer, fail_if_no_peer_cert: true]

      {_server, port} = start!(transport: :tls, tls: tls)
      cert_args = ["-k", "--cert", Path.join(dir, "cert.pem"), "--key", Path.join(dir, "key.pem")]

      assert {out, 0} =
               System.cmd(
                 "curl",
                 ["-sS", "--http2"] ++ cert_args ++ ["https://localhost:#{port}/conn"]
               )

      assert out == "ok"
      assert_receive {:conn, %{scheme: :https, host: "localhost", port: ^port}, data, :"HTTP/2"}
      {peer, _sock, ssl} = data
      assert peer.ssl_cert == client[:cert]
      assert ssl[:protocol] in [:"tlsv1.2", :"tlsv1.3"]
      assert is_tuple(ssl[:selected_cipher_suite]) or is_map(ssl[:selected_cipher_suite])
    end
  end

  defp pem(entries), do: :public_key.pem_encode(entries)

  describe "responses" do
    test "send_resp: status, headers (connection-specific ones dropped), body; HEAD; 204 and " <>
           "304 without body or content-length" do
      {_server, port} = start!()
      url = "http://127.0.0.1:#{port}"

      {out, 0} = curl(url <> "/resp/201")
      assert out =~ ~r/\AHTTP\/2 201 \r\n/
      assert out =~ "x-plug: yes\r\n"
      assert out =~ "content-length: 11\r\n"
      refute out =~ "connection:"
      assert String.ends_with?(out, "\r\n\r\nbody of 201")

      {out, 0} = curl(url <> "/resp/200", ["--head"])
      assert out =~ "content-length: 11\r\n"
      assert String.ends_with?(out, "\r\n\r\n")

      for status <- [204, 304] do
        {out, 0} = curl(url <> "/resp/#{status}")
        assert out =~ "HTTP/2 #{status} \r\n"
        refute out =~ "content-length"
        assert String.ends_with?(out, "\r\n\r\n")
      end

      # A response set but not sent is sent when the plug returns.
      {out, 0} = curl(url <> "/set")
      assert out =~ "HTTP/2 202 \r\n"
      assert String.ends_with?(out, "set, not sent")
    end

    test "send_file: whole, from an offset, a range, and for HEAD", %{tmp_dir: dir} do
      {_server, port} = start!()
      path = Path.join(dir, "file")
      contents = :crypto.strong_rand_bytes(300_000)
      File.write!(path, contents)
      url = "http://127.0.0.1:#{port}/file?path=#{URI.encode_www_form(path)}"

      {out, 0} = curl(url)
      assert out =~ "content-length: 300000\r\n"
      assert String.ends_with?(out, "\r\n\r\n" <> contents)

      {out, 0} = curl(url <> "&offset=1000")
      assert String.ends_with?(out, "\r\n\r\n" <> binary_part(contents, 1000, 299_000))

      {out, 0} = curl(url <> "&offset=200000&length=70000")
      assert out =~ "content-length: 70000\r\n"
      assert String.ends_with?(out, "\r\n\r\n" <> binary_part(contents, 200_000, 70_000))

      {out, 0} = curl(url, ["--head"])
      assert out =~ "content-length: 300000\r\n"
      assert String.ends_with?(out, "\r\n\r\n")
    end

    test "send_chunked and chunk: the pieces, then the end of the stream" do
      {_server, port} = start!()
      conn = connect!(port)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/chunked")
      assert {:ok, conn, %{status: 200, body: "one two three"}} = H2Client.read_response(conn, id)

      data =
        for {:data, ^id, data, fin} <- Enum.map(H2Client.frames(conn), &parse/1), do: {data, fin}

      assert data == [{"one ", false}, {"two three", false}, {"", true}]
    end

    test "inform: a 103 Early Hints before the response" do
      {_server, port} = start!()
      {out, 0} = curl("http://127.0.0.1:#{port}/inform")

      assert out =~
               ~r/\AHTTP\/2 103 \r\nlink: <\/app.css>; rel=preload; as=style\r\n\r\nHTTP\/2 200 /

      assert String.ends_with?(out, "informed")
    end

    test "push is not supported" do
      {_server, port} = start!()
      {out, 0} = curl("http://127.0.0.1:#{port}/push")
      assert String.ends_with?(out, "{:error, :not_supported}")
    end

    test "upgrade: not supported, with the reason logged; the plug's ArgumentError is a 500" do
      {_server, port} = start!()

      log =
        capture_log(fn ->
          {out, 0} = curl("http://127.0.0.1:#{port}/upgrade")
          assert out =~ "HTTP/2 500 \r\n"
        end)

      assert log =~ "cannot upgrade to :websocket: h2flow does not implement WebSockets yet"

      assert log =~ "upgrade to websocket not supported by H2Flow.Plug.Adapter"
    end
  end

  # The raw client records frames as on the wire; DATA frames, parsed.
  defp parse({:data, flags, id, payload}), do: {:data, id, payload, Bitwise.band(flags, 1) == 1}
  defp parse(other), do: other
end
