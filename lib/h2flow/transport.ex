defmodule H2Flow.Transport do
  @moduledoc false
  # The socket operations a listener, a server connection and a client connection need, as a
  # behaviour with one module per transport (H2Flow.Transport.TCP, H2Flow.Transport.SSL), after
  # Thousand Island's: the rest of h2flow never dispatches on :gen_tcp / :ssl itself.

  @type socket :: :gen_tcp.socket() | :ssl.sslsocket()

  @callback listen(:inet.port_number(), keyword()) :: {:ok, socket()} | {:error, term()}
  @doc "Opens a client connection (passive, binary); over TLS, with the handshake done."
  @callback connect(charlist(), :inet.port_number(), keyword(), timeout()) ::
              {:ok, socket()} | {:error, term()}
  @callback accept(socket()) :: {:ok, socket()} | {:error, term()}
  @doc "Completes what accept/1 started (the TLS handshake); the socket to use from then on."
  @callback handshake(socket(), timeout()) :: {:ok, socket()} | {:error, term()}
  @callback controlling_process(socket(), pid()) :: :ok | {:error, term()}
  @callback peername(socket()) ::
              {:ok, {:inet.ip_address(), :inet.port_number()}} | {:error, term()}
  @callback sockname(socket()) ::
              {:ok, {:inet.ip_address(), :inet.port_number()}} | {:error, term()}
  @doc "The protocol ALPN chose (TLS), `:none` without ALPN."
  @callback negotiated_protocol(socket()) :: {:ok, binary()} | :none
  @callback setopts(socket(), keyword()) :: :ok | {:error, term()}
  @doc "Reads from a passive socket (the client's handshake)."
  @callback recv(socket(), non_neg_integer(), timeout()) :: {:ok, binary()} | {:error, term()}
  @callback send(socket(), iodata()) :: :ok | {:error, term()}
  @doc "Stops writing: what was sent still goes out, then FIN (close_notify for TLS)."
  @callback shutdown_write(socket()) :: :ok | {:error, term()}
  @callback close(socket()) :: :ok
  @doc "The peer's certificate (DER), if it sent one."
  @callback peer_cert(socket()) :: {:ok, binary()} | {:error, term()}
  @doc "The TLS session's parameters (`:ssl.connection_information/1`)."
  @callback connection_information(socket()) :: {:ok, keyword()} | {:error, term()}

  @doc "The module for a `:transport` option."
  @spec module(:tcp | :tls) :: module()
  def module(:tcp), do: H2Flow.Transport.TCP
  def module(:tls), do: H2Flow.Transport.SSL
end
