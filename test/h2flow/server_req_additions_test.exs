defmodule H2Flow.ServerReqAdditionsTest do
  # What H2Flow.Req gained for Plug, without Plug: 1xx responses (inform/3), the socket's side
  # of the connection (sock/1, cert/1, tls_info/1), and no made-up content-length on 204/304.
  use ExUnit.Case, async: true

  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.H2Client

  defp serve(fun) do
    test = self()
    {_server, port} = start_server!(fn req -> send(test, {:result, fun.(req)}) && req end)
    port
  end

  test "inform/3: 103 Early Hints, then the response; 101 and a late inform raise" do
    port =
      serve(fn req ->
        :ok = Req.inform(103, %{"link" => "</a.css>; rel=preload"}, req)
        :ok = Req.inform(103, [{"link", "</b.js>; rel=preload"}], req)
        bad = catch_error(Req.inform(101, %{}, req))
        req = Req.reply(200, %{}, "done", req)
        {bad, catch_error(Req.inform(103, %{}, req))}
      end)

    conn = connect!(port)
    {:ok, conn, id} = H2Client.request(conn, "GET", "/")
    {:ok, _conn, frames} = H2Client.recv_until(conn, &match?({:data, ^id, _, true}, &1))
    statuses = for {:headers, ^id, [{":status", s} | fields], _} <- frames, do: {s, fields}

    assert [
             {"103", [{"link", "</a.css>; rel=preload"}]},
             {"103", [{"link", "</b.js>; rel=preload"}]},
             {"200", _}
           ] = statuses

    assert_receive {:result, {%ArgumentError{message: m101}, %ArgumentError{message: late}}},
                   5_000

    assert m101 =~ "100..199 except 101"
    assert late =~ "already sent"
  end

  test "sock/1 is the local address; cert/1 and tls_info/1 are nil over h2c" do
    port = serve(fn req -> {Req.sock(req), Req.cert(req), Req.tls_info(req), Req.peer(req)} end)
    conn = connect!(port)
    {:ok, conn, id} = H2Client.request(conn, "GET", "/")
    assert {:ok, _conn, %{status: 204}} = H2Client.read_response(conn, id)
    assert_receive {:result, {{{127, 0, 0, 1}, ^port}, nil, nil, {{127, 0, 0, 1}, peer_port}}}
    assert peer_port != port
  end

  test "tls_info/1 over TLS: the negotiated protocol and cipher suite" do
    test = self()

    {_server, port} =
      start_server!(fn req -> send(test, {:tls, Req.tls_info(req), Req.cert(req)}) && req end,
        transport: :tls,
        tls: H2Flow.TLS.self_signed()
      )

    {:ok, conn} = H2Client.connect("127.0.0.1", port, tls: true)
    :ok = H2Client.send_preface(conn)
    {:ok, conn, id} = H2Client.request(conn, "GET", "/")
    assert {:ok, _conn, %{status: 204}} = H2Client.read_response(conn, id)
    assert_receive {:tls, info, nil}
    assert info[:protocol] in [:"tlsv1.2", :"tlsv1.3"]
    assert info[:selected_cipher_suite]
  end

  test "204 and 304 replies carry no content-length; 200 with an empty body does" do
    for {status, expected} <- [{204, nil}, {304, nil}, {200, "0"}] do
      port = serve(&Req.reply(status, %{}, "", &1))
      conn = connect!(port)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/")
      assert {:ok, _conn, %{status: ^status, headers: headers}} = H2Client.read_response(conn, id)

      assert List.keyfind(headers, "content-length", 0) ==
               if(expected, do: {"content-length", expected})
    end
  end
end
