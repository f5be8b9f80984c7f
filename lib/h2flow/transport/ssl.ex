defmodule H2Flow.Transport.SSL do
  @moduledoc false
  # H2Flow.Transport over :ssl (h2 with ALPN). accept/1 only takes the TCP connection; the
  # handshake runs in the connection process, so a slow or hostile client holds up no acceptor.

  @behaviour H2Flow.Transport

  @impl true
  def listen(port, opts), do: :ssl.listen(port, [:binary | opts])
  @impl true
  def connect(host, port, opts, timeout),
    do: :ssl.connect(host, port, [:binary, {:active, false} | opts], timeout)

  @impl true
  def accept(socket), do: :ssl.transport_accept(socket)
  @impl true
  def handshake(socket, timeout), do: :ssl.handshake(socket, timeout)
  @impl true
  def controlling_process(socket, pid), do: :ssl.controlling_process(socket, pid)
  @impl true
  def peername(socket), do: :ssl.peername(socket)
  @impl true
  def sockname(socket), do: :ssl.sockname(socket)

  @impl true
  def negotiated_protocol(socket) do
    case :ssl.negotiated_protocol(socket) do
      {:ok, protocol} -> {:ok, protocol}
      {:error, _} -> :none
    end
  end

  @impl true
  def setopts(socket, opts), do: :ssl.setopts(socket, opts)
  @impl true
  def recv(socket, length, timeout), do: :ssl.recv(socket, length, timeout)
  @impl true
  def send(socket, data), do: :ssl.send(socket, data)
  @impl true
  def shutdown_write(socket), do: :ssl.shutdown(socket, :write)
  @impl true
  def close(socket), do: :ssl.close(socket)
  @impl true
  def peer_cert(socket), do: :ssl.peercert(socket)
  @impl true
  def connection_information(socket), do: :ssl.connection_information(socket)
end
