defmodule H2Flow.Test.RawServer do
  @moduledoc false
  # A scripted HTTP/2 server for the client's tests: accepts one connection, writes its SETTINGS
  # at once (H2Flow.Client.connect/2 waits for them), then the test reads the client's frames and
  # writes its own through H2Client's bit-syntax writer and parser (whose HPACK decoder reads
  # the client's requests). Nothing of the NIF is used on this side.

  alias H2Flow.Test.H2Client

  @preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

  @doc "Listens on a free port; the next connection is accepted and handed to the caller."
  def start(settings \\ []) do
    {:ok, lsock} = :gen_tcp.listen(0, [:binary, active: false, ip: {127, 0, 0, 1}])
    {:ok, port} = :inet.port(lsock)
    test = self()

    spawn_link(fn ->
      {:ok, sock} = :gen_tcp.accept(lsock, 10_000)
      settings = for {id, value} <- settings, do: <<id::16, value::32>>
      :ok = :gen_tcp.send(sock, H2Client.encode_frame(:settings, 0, 0, settings))
      :ok = :gen_tcp.controlling_process(sock, test)
      send(test, {:raw_server, sock})
      :gen_tcp.close(lsock)
    end)

    "http://127.0.0.1:#{port}"
  end

  @doc "The accepted connection, past the client's preface, as an H2Client over it."
  def accept! do
    sock =
      receive do
        {:raw_server, sock} -> sock
      after
        10_000 -> raise "no connection"
      end

    {:ok, @preface} = :gen_tcp.recv(sock, 24, 5_000)

    %H2Client{
      socket: sock,
      transport: :gen_tcp,
      host: "127.0.0.1",
      port: 0,
      scheme: "http",
      auto_ack: [:settings, :ping],
      table: H2Client.HPACK.new_table()
    }
  end

  @doc "Reads frames until a request's HEADERS arrive; returns the conn and its stream id."
  def next_request!(conn) do
    {:ok, conn, frames} = H2Client.recv_until(conn, &match?({:headers, _, _, _}, &1))
    {:headers, id, headers, _} = List.last(frames)
    {conn, id, headers}
  end
end
