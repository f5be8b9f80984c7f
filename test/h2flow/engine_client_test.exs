defmodule H2Flow.EngineClientTest do
  # H2Flow.Engine in the client role through the NIF: the preface, requests within the server's
  # limit, response events (consecutive DATA payloads of a stream as one event), reads, and
  # invalid requests raising. Server frames are written with H2Client's bit-syntax encoder.
  use ExUnit.Case, async: true

  alias H2Flow.Engine
  alias H2Flow.Test.H2Client
  alias H2Flow.Test.H2Client.HPACK

  @preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
  @get [{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}]

  defp frame(type, flags, id, payload),
    do: IO.iodata_to_binary(H2Client.encode_frame(type, flags, id, payload))

  defp settings(params), do: frame(:settings, 0, 0, for({k, v} <- params, do: <<k::16, v::32>>))

  test "preface, request, response, read" do
    {:ok, engine} = Engine.new_client()
    assert <<@preface, _length::24, 4, 0, 0::32, 2::16, 0::32, _::binary>> = Engine.flush(engine)
    assert {:ok, []} = Engine.recv(engine, settings([]) <> frame(:settings, 1, 0, ""))
    assert {:ok, 1, 0, false} = Engine.request(engine, @get, "", true)

    assert {:ok, 3, 5, false} =
             Engine.request(engine, [{":method", "POST"} | tl(@get)], "hello", true)

    head = HPACK.encode_literal_block([{":status", "200"}, {"x-a", "1"}])
    input = frame(:headers, 4, 1, head) <> frame(:data, 0, 1, "ab") <> frame(:data, 1, 1, "cd")

    assert {:ok, [{:response, 1, 200, [{"x-a", "1"}], false}, {:data, 1, ["ab", "cd"], true}]} =
             Engine.recv(engine, input)

    assert Engine.read(engine, 1, 10) == :fin
    assert Engine.stats(engine).streams_opened == 2
  end

  test "requests beyond the server's limit wait; after a GOAWAY none opens" do
    {:ok, engine} = Engine.new_client()
    _ = Engine.flush(engine)
    assert {:ok, []} = Engine.recv(engine, settings([{3, 1}]))
    assert {:ok, 1, 0, false} = Engine.request(engine, @get, "", true)
    assert :wait = Engine.request(engine, @get, "", true)
    goaway = frame(:goaway, 0, 0, <<0::32, 0::32>>)

    assert {:ok, [{:goaway, 0, :no_error, ""}, {:stream_reset, 1, :refused_stream}]} =
             Engine.recv(engine, goaway)

    assert {:error, :closed} = Engine.request(engine, @get, "", true)
    assert Engine.info(engine).done
  end

  test "invalid requests raise; a server that pushes is a connection error" do
    {:ok, engine} = Engine.new_client()

    assert_raise ArgumentError, ~r/8.2.2/, fn ->
      Engine.request(engine, @get ++ [{"connection", "x"}], "", true)
    end

    assert_raise ArgumentError, ~r/missing :method/, fn ->
      Engine.request(engine, tl(@get), "", true)
    end

    {:ok, 1, 0, false} = Engine.request(engine, @get, "", true)
    _ = Engine.flush(engine)
    push = frame(:push_promise, 4, 1, [<<2::32>>, HPACK.encode_literal_block(@get)])

    assert {:error, {:connection_error, :protocol_error, "PUSH_PROMISE" <> _}} =
             Engine.recv(engine, settings([]) <> push)

    # The GOAWAY names no server stream (a client processed none) and says why.
    assert Enum.any?(
             frames(Engine.flush(engine)),
             &match?({7, <<0::32, 1::32, "PUSH" <> _>>}, &1)
           )
  end

  defp frames(<<len::24, type, _flags, _::32, payload::binary-size(len), rest::binary>>),
    do: [{type, payload} | frames(rest)]

  defp frames(""), do: []
end
